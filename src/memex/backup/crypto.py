"""Archive encryption: AES-256-GCM over fixed-size segments (the STREAM construction), key from scrypt.

Each segment's nonce is a random per-archive prefix, the segment's number and a last-segment flag, so a
segment that is changed, dropped, reordered, or moved to the end of a truncated file fails authentication.
The key comes from the passphrase (MEMEX_BACKUP_KEY) and a random salt kept in the archive's header; a
check value derived beside it tells a wrong passphrase from a damaged archive.
"""

from __future__ import annotations

import base64
import hmac
import os
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from memex.errors import BackupError

TAG_BYTES = 16
_PREFIX_BYTES = 7
# scrypt at 2**15 × 8 costs about 32 MiB and a tenth of a second: once per archive, and per guess.
_SCRYPT = {"n": 2**15, "r": 8, "p": 1}
_MAX_SEGMENTS = 2**32


@dataclass(frozen=True)
class KeyParams:
    """What the header says about the key: how to derive it, and how to tell whether a passphrase is right."""

    salt: bytes
    nonce_prefix: bytes
    check: bytes
    n: int
    r: int
    p: int

    def as_json(self) -> dict[str, object]:
        return {
            "cipher": "AES-256-GCM",
            "kdf": "scrypt",
            "n": self.n,
            "r": self.r,
            "p": self.p,
            "salt": _b64(self.salt),
            "nonce_prefix": _b64(self.nonce_prefix),
            "check": _b64(self.check),
        }

    @classmethod
    def from_json(cls, value: object) -> KeyParams:
        try:
            assert isinstance(value, dict) and value["cipher"] == "AES-256-GCM" and value["kdf"] == "scrypt"
            return cls(
                salt=base64.b64decode(value["salt"]),
                nonce_prefix=base64.b64decode(value["nonce_prefix"]),
                check=base64.b64decode(value["check"]),
                n=int(value["n"]),
                r=int(value["r"]),
                p=int(value["p"]),
            )
        except (AssertionError, KeyError, TypeError, ValueError) as exc:
            raise BackupError("the archive's encryption header is damaged or of an unknown kind") from exc


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _derive(passphrase: str, *, salt: bytes, n: int, r: int, p: int) -> tuple[bytes, bytes]:
    """The AES key and the check value, both from one scrypt run."""
    if n > 2**20 or r > 32 or p > 16:
        raise BackupError("the archive asks for an unreasonably expensive key derivation; it is not a Memex archive")
    material = Scrypt(salt=salt, length=64, n=n, r=r, p=p).derive(passphrase.encode("utf-8"))
    return material[:32], material[32:]


class Sealer:
    """Encrypts the segments of one archive, in order."""

    def __init__(self, passphrase: str) -> None:
        salt, prefix = os.urandom(16), os.urandom(_PREFIX_BYTES)
        key, check = _derive(passphrase, salt=salt, **_SCRYPT)
        self.params = KeyParams(salt=salt, nonce_prefix=prefix, check=check, **_SCRYPT)
        self._aead = AESGCM(key)
        self._counter = 0

    def seal(self, data: bytes, *, aad: bytes, final: bool) -> bytes:
        nonce = _nonce(self.params.nonce_prefix, self._counter, final)
        self._counter += 1
        return self._aead.encrypt(nonce, data, aad)


class Opener:
    """Decrypts and authenticates the segments of one archive, in order."""

    def __init__(self, params: KeyParams, passphrase: str) -> None:
        key, check = _derive(passphrase, salt=params.salt, n=params.n, r=params.r, p=params.p)
        if not hmac.compare_digest(check, params.check):
            raise BackupError(
                "wrong backup key: this archive was encrypted with another MEMEX_BACKUP_KEY (or its header is damaged)"
            )
        self._prefix = params.nonce_prefix
        self._aead = AESGCM(key)
        self._counter = 0

    def open(self, data: bytes, *, aad: bytes, final: bool, offset: int) -> bytes:
        nonce = _nonce(self._prefix, self._counter, final)
        self._counter += 1
        try:
            return self._aead.decrypt(nonce, data, aad)
        except InvalidTag:
            raise BackupError(
                f"the archive is damaged or was tampered with: segment {self._counter} (at byte {offset}) "
                "fails authentication"
            ) from None


def _nonce(prefix: bytes, counter: int, final: bool) -> bytes:
    if counter >= _MAX_SEGMENTS:
        raise BackupError("the archive has too many segments")
    return prefix + struct.pack(">IB", counter, 1 if final else 0)
