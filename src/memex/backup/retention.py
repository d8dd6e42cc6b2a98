"""A folder of archives: listing them (with whether each was verified) and pruning them by age and count.

The rule `prune` applies: an archive is kept if it was made less than KEEP_DAYS days ago, or if it is one of
the KEEP_LAST newest; every other archive is deleted. Ages come from the time in each archive's header, not
the file's, so copying archives around does not change what is kept. Files that are not Memex archives are
never touched. `verify` leaves a small `<archive>.verified` file beside an archive it passed.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from memex.backup.archive import read_header
from memex.errors import BackupError, InvalidInput

VERIFIED_SUFFIX = ".verified"


@dataclass(frozen=True)
class Archive:
    path: Path
    created_at: datetime
    size: int
    schema_revision: str | None
    memex_version: str | None
    reason: str | None
    encrypted: bool
    verified_at: datetime | None

    def as_dict(self) -> dict[str, object]:
        return {
            "path": str(self.path),
            "name": self.path.name,
            "created_at": self.created_at.isoformat(),
            "bytes": self.size,
            "schema_revision": self.schema_revision,
            "memex_version": self.memex_version,
            "reason": self.reason,
            "encrypted": self.encrypted,
            "verified": self.verified_at is not None,
            "verified_at": self.verified_at.isoformat() if self.verified_at else None,
        }


def list_archives(folder: Path) -> list[Archive]:
    """The archives in `folder`, newest first (an absent folder holds none)."""
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        if not path.is_file() or path.name.endswith((VERIFIED_SUFFIX, ".partial")):
            continue
        try:
            with open(path, "rb") as f:
                header = read_header(f)
            created = datetime.fromisoformat(str(header.fields["created_at"]))
            size = path.stat().st_size
        except (OSError, BackupError, KeyError, ValueError):
            continue  # not an archive: never listed, never pruned
        found.append(
            Archive(
                path=path,
                created_at=created,
                size=size,
                schema_revision=header.fields.get("schema_revision"),
                memex_version=header.fields.get("memex_version"),
                reason=header.fields.get("reason"),
                encrypted=header.encrypted,
                verified_at=_verified_at(path, size),
            )
        )
    return sorted(found, key=lambda a: (a.created_at, a.path.name), reverse=True)


def to_prune(archives: list[Archive], *, keep_days: int, keep_last: int, now: datetime) -> list[Archive]:
    """Which of `archives` the retention rule deletes (see the module docstring)."""
    if keep_days < 0 or keep_last < 0:
        raise InvalidInput("--keep-days and --keep-last cannot be negative")
    if keep_last < 1:
        raise InvalidInput("--keep-last must be at least 1: pruning never deletes the newest archive")
    newest = sorted(archives, key=lambda a: (a.created_at, a.path.name), reverse=True)
    cutoff = now - timedelta(days=keep_days)
    return [a for i, a in enumerate(newest) if i >= keep_last and a.created_at <= cutoff]


def prune(folder: Path, *, keep_days: int, keep_last: int, now: datetime) -> tuple[list[Archive], list[Archive]]:
    """Delete what the rule says; returns (kept, deleted)."""
    archives = list_archives(folder)
    doomed = to_prune(archives, keep_days=keep_days, keep_last=keep_last, now=now)
    for archive in doomed:
        try:
            archive.path.unlink(missing_ok=True)
            _marker(archive.path).unlink(missing_ok=True)
        except OSError as exc:
            raise BackupError(f"cannot delete {archive.path}: {exc.strerror or exc}") from exc
    gone = {a.path for a in doomed}
    return [a for a in archives if a.path not in gone], doomed


def mark_verified(path: Path, *, at: datetime) -> None:
    """Note beside the archive that it passed verification (best effort: a read-only folder just has no note)."""
    with contextlib.suppress(OSError):
        _marker(path).write_text(json.dumps({"verified_at": at.isoformat(), "bytes": path.stat().st_size}))


def _verified_at(path: Path, size: int) -> datetime | None:
    try:
        note = json.loads(_marker(path).read_text())
        return datetime.fromisoformat(note["verified_at"]) if note.get("bytes") == size else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _marker(path: Path) -> Path:
    return path.with_name(path.name + VERIFIED_SUFFIX)
