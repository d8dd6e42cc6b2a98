"""The archive file format: a header, then the dump and the manifest in checked segments, written in one pass.

    "MEMEXBAK" · version (1 byte) · header length (4 bytes) · header (JSON)
    segment*:  kind ("D" dump, "M" manifest) · flags (1 = last) · length (4 bytes) · payload [· CRC-32]

The header is readable without the key (time, schema revision, Memex version, how the key is derived) so that
`backup list` works on encrypted archives. Dump segments come first, then the manifest, whose last segment
carries the "last" flag. A plain payload is followed by a CRC-32 of the segment's number, kind, flags, length
and data; an encrypted payload is AES-256-GCM with the header's digest and the kind and flags as associated
data (see crypto.py). Every archive therefore detects a flipped byte at the segment it is in and a truncation
(no last segment); an encrypted one also detects deliberate tampering, and the manifest's sha256 of the dump
covers the whole dump end to end.

Why not tar: a tar member's size comes before its data, so a streamed `pg_dump` of unknown length would need a
temporary copy, and a manifest written first could not hold the dump's checksum.
"""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from memex.backup.crypto import TAG_BYTES, KeyParams, Opener, Sealer
from memex.errors import BackupError

MAGIC = b"MEMEXBAK"
FORMAT_VERSION = 1
SEGMENT_BYTES = 1 << 20
DUMP = b"D"
MANIFEST = b"M"
_LAST = 1
_PREAMBLE = struct.Struct(">8sBI")
_SEGMENT = struct.Struct(">ccI")
_MAX_HEADER = 1 << 16
_MAX_PAYLOAD = SEGMENT_BYTES + TAG_BYTES


@dataclass(frozen=True)
class Header:
    """The archive's plain header and its digest (which every segment is bound to)."""

    fields: dict[str, Any]
    digest: bytes
    size: int

    @property
    def encrypted(self) -> bool:
        return self.fields.get("encryption") is not None


def read_header(f: IO[bytes]) -> Header:
    """The header at the start of `f`; a clear error when `f` is not a Memex archive."""
    preamble = f.read(_PREAMBLE.size)
    if len(preamble) < _PREAMBLE.size or not preamble.startswith(MAGIC):
        raise BackupError("this file is not a Memex backup archive")
    _, version, length = _PREAMBLE.unpack(preamble)
    if version != FORMAT_VERSION:
        raise BackupError(f"this archive has format version {version}; this Memex reads version {FORMAT_VERSION}")
    if length > _MAX_HEADER:
        raise BackupError("the archive's header is damaged")
    raw = f.read(length)
    try:
        fields = json.loads(raw)
        assert isinstance(fields, dict)
    except (ValueError, AssertionError):
        raise BackupError("the archive's header is damaged or truncated") from None
    return Header(fields=fields, digest=hashlib.sha256(preamble + raw).digest(), size=len(preamble) + length)


class ArchiveWriter:
    """Writes one archive to `out`: the header at once, then `dump` data as it comes, then the manifest."""

    def __init__(self, out: IO[bytes], header: dict[str, Any], *, passphrase: str | None) -> None:
        self._out = out
        self._sealer = Sealer(passphrase) if passphrase else None
        fields = {**header, "encryption": self._sealer.params.as_json() if self._sealer else None}
        raw = json.dumps(fields, sort_keys=True).encode()
        preamble = _PREAMBLE.pack(MAGIC, FORMAT_VERSION, len(raw))
        out.write(preamble + raw)
        self.header_digest = hashlib.sha256(preamble + raw).digest()
        self._pending = bytearray()
        self._counter = 0
        self.dump_sha256 = hashlib.sha256()
        self.dump_bytes = 0
        self.written = len(preamble) + len(raw)

    def dump(self, data: bytes) -> None:
        """Append dump bytes (any amount); full segments are written as they fill."""
        self.dump_sha256.update(data)
        self.dump_bytes += len(data)
        self._pending += data
        while len(self._pending) >= SEGMENT_BYTES:
            self._segment(DUMP, bytes(self._pending[:SEGMENT_BYTES]), last=False)
            del self._pending[:SEGMENT_BYTES]

    def finish(self, manifest: dict[str, Any]) -> None:
        """Write the rest of the dump and the manifest; the archive is complete once this returns."""
        if self._pending:
            self._segment(DUMP, bytes(self._pending), last=False)
            self._pending.clear()
        raw = json.dumps(manifest, sort_keys=True, indent=1).encode()
        pieces = [raw[i : i + SEGMENT_BYTES] for i in range(0, len(raw), SEGMENT_BYTES)] or [b""]
        for i, piece in enumerate(pieces):
            self._segment(MANIFEST, piece, last=i == len(pieces) - 1)

    def _segment(self, kind: bytes, data: bytes, *, last: bool) -> None:
        flags = _LAST if last else 0
        if self._sealer is not None:
            payload = self._sealer.seal(data, aad=self.header_digest + kind + bytes([flags]), final=last)
            framed = _SEGMENT.pack(kind, bytes([flags]), len(payload)) + payload
        else:
            head = _SEGMENT.pack(kind, bytes([flags]), len(data))
            crc = zlib.crc32(data, zlib.crc32(struct.pack(">I", self._counter) + head))
            framed = head + data + struct.pack(">I", crc)
        self._counter += 1
        self._out.write(framed)
        self.written += len(framed)


class ArchiveReader:
    """Reads and checks one archive from `source`, segment by segment, never holding more than one in memory."""

    def __init__(
        self, source: IO[bytes], *, passphrase: str | None, on_read: Callable[[int], None] | None = None
    ) -> None:
        self._in = source
        self.header = read_header(source)
        self._offset = self.header.size
        self._on_read = on_read
        self._opener: Opener | None = None
        if self.header.encrypted:
            if not passphrase:
                raise BackupError(
                    "this archive is encrypted: set MEMEX_BACKUP_KEY (or MEMEX_BACKUP_KEY_FILE) to the key it was "
                    "made with"
                )
            self._opener = Opener(KeyParams.from_json(self.header.fields["encryption"]), passphrase)
        self._counter = 0

    def read(self, on_dump: Callable[[bytes], None]) -> tuple[dict[str, Any], str, int]:
        """Pass every dump byte to `on_dump`, then return the manifest, the dump's sha256 and its size.

        Raises BackupError if anything is damaged, truncated or (encrypted) tampered with, or the dump's checksum
        differs from the manifest's; `on_dump` may already have received part of the data by then.
        """
        digest, size = hashlib.sha256(), 0
        manifest = bytearray()
        for kind, data in self._segments():
            if kind == DUMP:
                if manifest:
                    raise BackupError("the archive is damaged: dump data after the manifest")
                digest.update(data)
                size += len(data)
                on_dump(data)
            else:
                manifest += data
        try:
            parsed = json.loads(manifest)
            assert isinstance(parsed, dict)
        except (ValueError, AssertionError):
            raise BackupError("the archive's manifest is damaged") from None
        if parsed.get("header_sha256") != self.header.digest.hex():
            raise BackupError("the archive's header does not belong to its manifest: the archive was altered")
        member = parsed.get("members", {}).get("database.dump", {})
        if member.get("sha256") != digest.hexdigest() or member.get("bytes") != size:
            raise BackupError(
                "the database dump in the archive does not match the sha256 in its manifest: the archive is damaged"
            )
        return parsed, digest.hexdigest(), size

    def _segments(self) -> Iterator[tuple[bytes, bytes]]:
        while True:
            start = self._offset
            head = self._exactly(_SEGMENT.size, start)
            kind, flags_byte, length = _SEGMENT.unpack(head)
            flags = flags_byte[0]
            if kind not in (DUMP, MANIFEST) or flags & ~_LAST or length > _MAX_PAYLOAD:
                raise BackupError(f"the archive is damaged at byte {start} (a segment header makes no sense)")
            last = bool(flags & _LAST)
            if self._opener is not None:
                payload = self._exactly(length, start)
                data = self._opener.open(payload, aad=self.header.digest + kind + flags_byte, final=last, offset=start)
            else:
                data = self._exactly(length, start)
                (crc,) = struct.unpack(">I", self._exactly(4, start))
                if zlib.crc32(data, zlib.crc32(struct.pack(">I", self._counter) + head)) != crc:
                    raise BackupError(
                        f"the archive is damaged: segment {self._counter + 1} (at byte {start}) fails its checksum"
                    )
            self._counter += 1
            yield kind, data
            if last:
                if self._in.read(1):
                    raise BackupError(f"the archive is damaged: unexpected data after its end (byte {self._offset})")
                return

    def _exactly(self, n: int, segment_start: int) -> bytes:
        data = self._in.read(n)
        self._offset += len(data)
        if self._on_read is not None:
            self._on_read(len(data))
        if len(data) < n:
            raise BackupError(
                f"the archive is truncated: it ends at byte {self._offset}, inside the segment that starts at byte "
                f"{segment_start}, before its manifest"
            )
        return data
