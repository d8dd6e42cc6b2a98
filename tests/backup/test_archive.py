"""The archive format on its own: round trips, and every kind of damage read as a clear error."""

from __future__ import annotations

import io
import json

import pytest

from memex.backup.archive import SEGMENT_BYTES, ArchiveReader, ArchiveWriter
from memex.errors import BackupError

DUMP = bytes(range(256)) * (SEGMENT_BYTES // 256) * 2 + b"tail"


def _archive(passphrase: str | None) -> bytes:
    out = io.BytesIO()
    writer = ArchiveWriter(out, {"created_at": "2026-11-25T00:00:00+00:00"}, passphrase=passphrase)
    for i in range(0, len(DUMP), 100_000):
        writer.dump(DUMP[i : i + 100_000])
    writer.finish(
        {
            "header_sha256": writer.header_digest.hex(),
            "members": {"database.dump": {"sha256": writer.dump_sha256.hexdigest(), "bytes": writer.dump_bytes}},
        }
    )
    return out.getvalue()


def _read(data: bytes, passphrase: str | None) -> bytes:
    received = bytearray()
    ArchiveReader(io.BytesIO(data), passphrase=passphrase).read(received.extend)
    return bytes(received)


@pytest.mark.parametrize("passphrase", [None, "correct horse"])
def test_round_trip(passphrase: str | None) -> None:
    data = _archive(passphrase)
    assert _read(data, passphrase) == DUMP
    if passphrase:
        assert DUMP[:4096] not in data


@pytest.mark.parametrize("passphrase", [None, "correct horse"])
@pytest.mark.parametrize("where", [0.3, 0.7, 0.999])
def test_a_flipped_byte_is_found(passphrase: str | None, where: float) -> None:
    data = bytearray(_archive(passphrase))
    data[int(len(data) * where)] ^= 0x01
    with pytest.raises(BackupError, match=r"damaged|tampered|truncated"):
        _read(bytes(data), passphrase)


@pytest.mark.parametrize("passphrase", [None, "correct horse"])
@pytest.mark.parametrize("keep", [0.5, 0.999])
def test_a_truncated_archive_is_found(passphrase: str | None, keep: float) -> None:
    data = _archive(passphrase)
    with pytest.raises(BackupError, match="truncated"):
        _read(data[: int(len(data) * keep)], passphrase)


def test_a_truncation_at_a_segment_boundary_is_found() -> None:
    data = _archive(None)
    with pytest.raises(BackupError, match="truncated"):
        _read(data[: data.index(b"M\x01")], None)


def test_the_wrong_key_and_a_missing_key_are_told_apart() -> None:
    data = _archive("correct horse")
    with pytest.raises(BackupError, match="wrong backup key"):
        _read(data, "battery staple")
    with pytest.raises(BackupError, match="this archive is encrypted: set MEMEX_BACKUP_KEY"):
        _read(data, None)


def test_an_edited_header_is_found() -> None:
    data = _archive(None)
    edited = data.replace(b"2026-11-25", b"2027-11-25", 1)
    with pytest.raises(BackupError, match="header does not belong"):
        _read(edited, None)


def test_the_header_is_readable_without_the_key() -> None:
    data = _archive("correct horse")
    header_length = int.from_bytes(data[9:13], "big")
    fields = json.loads(data[13 : 13 + header_length])
    assert fields["created_at"] == "2026-11-25T00:00:00+00:00"
    assert fields["encryption"]["cipher"] == "AES-256-GCM"


def test_not_an_archive() -> None:
    with pytest.raises(BackupError, match="not a Memex backup archive"):
        _read(b"PGDMP\x01\x0f", None)
