"""Random secrets and their stored form: only sha256 hashes of session tokens and API keys reach the database."""

from __future__ import annotations

import hashlib
import re
import secrets
import string
from dataclasses import dataclass

KEY_PREFIX = "mx"
_PREFIX_ALPHABET = string.ascii_lowercase + string.digits
# mx_<8 lower-case letters or digits>_<secret>
_KEY_PATTERN = re.compile(r"mx_([a-z0-9]{8})_[A-Za-z0-9_-]{20,100}")


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def session_token() -> str:
    return secrets.token_urlsafe(32)


def csrf_token() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class KeyMaterial:
    secret: str
    prefix: str

    @property
    def hash(self) -> str:
        return digest(self.secret)


def new_api_key() -> KeyMaterial:
    """A new key, `mx_<prefix>_<secret>`: the prefix is stored in clear so people can tell their keys apart."""
    prefix = "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(8))
    return KeyMaterial(secret=f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}", prefix=prefix)


def looks_like_api_key(value: str) -> bool:
    return _KEY_PATTERN.fullmatch(value) is not None
