"""Listing and pruning a folder of archives: exactly what the rule says is kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from memex.backup import retention
from memex.backup.archive import ArchiveWriter
from memex.errors import InvalidInput

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def _archive(folder: Path, name: str, *, days_ago: float) -> Path:
    path = folder / name
    created = NOW - timedelta(days=days_ago)
    with open(path, "wb") as out:
        writer = ArchiveWriter(out, {"created_at": created.isoformat(), "schema_revision": "0007"}, passphrase=None)
        writer.dump(b"x")
        writer.finish({"header_sha256": writer.header_digest.hex()})
    return path


def _names(archives: list[retention.Archive]) -> set[str]:
    return {a.path.name for a in archives}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    for days in (0.1, 1, 3, 6.9, 7.1, 10, 30):
        # Names deliberately out of time order: ages come from the headers.
        _archive(tmp_path, f"backup-{int(days * 10):04d}.backup", days_ago=days)
    (tmp_path / "notes.txt").write_text("not an archive")
    (tmp_path / "stray.backup").write_bytes(b"PGDMP")
    return tmp_path


def test_list_is_newest_first_and_skips_other_files(folder: Path) -> None:
    archives = retention.list_archives(folder)
    assert [a.path.name for a in archives] == [
        "backup-0001.backup",
        "backup-0010.backup",
        "backup-0030.backup",
        "backup-0069.backup",
        "backup-0071.backup",
        "backup-0100.backup",
        "backup-0300.backup",
    ]
    assert all(a.schema_revision == "0007" and not a.verified_at for a in archives)


def test_prune_keeps_the_last_days_and_the_newest(folder: Path) -> None:
    kept, deleted = retention.prune(folder, keep_days=7, keep_last=1, now=NOW)
    assert _names(deleted) == {"backup-0071.backup", "backup-0100.backup", "backup-0300.backup"}
    assert _names(kept) == {"backup-0001.backup", "backup-0010.backup", "backup-0030.backup", "backup-0069.backup"}
    assert (folder / "notes.txt").exists() and (folder / "stray.backup").exists()
    assert _names(retention.list_archives(folder)) == _names(kept)


def test_keep_last_keeps_old_archives_when_there_are_few_new_ones(folder: Path) -> None:
    _, deleted = retention.prune(folder, keep_days=2, keep_last=5, now=NOW)
    assert _names(deleted) == {"backup-0100.backup", "backup-0300.backup"}


def test_keep_days_zero_keeps_only_the_newest(folder: Path) -> None:
    kept, _ = retention.prune(folder, keep_days=0, keep_last=1, now=NOW)
    assert _names(kept) == {"backup-0001.backup"}


def test_the_newest_is_always_kept(folder: Path) -> None:
    with pytest.raises(InvalidInput, match="at least 1"):
        retention.prune(folder, keep_days=0, keep_last=0, now=NOW)


def test_a_verified_mark_goes_with_its_archive(folder: Path) -> None:
    old = folder / "backup-0300.backup"
    retention.mark_verified(old, at=NOW)
    assert retention.list_archives(folder)[-1].verified_at == NOW
    retention.prune(folder, keep_days=7, keep_last=1, now=NOW)
    assert not old.exists() and not (folder / "backup-0300.backup.verified").exists()
