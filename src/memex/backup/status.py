"""What the last backups did, kept in `memex_meta`: read by `memex doctor`, the metrics and `backup list`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from memex.backup import store


@dataclass(frozen=True, slots=True)
class BackupStatus:
    """The last successful backup of this database and its last successful verification (None: never)."""

    last_backup_at: datetime | None = None
    last_backup_path: str | None = None
    last_verified_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    last_backup_id: str | None = None


async def read(conn: AsyncConnection) -> BackupStatus:
    """The recorded status; every field None when no backup was ever recorded."""
    value = await store.read_status(conn)
    return BackupStatus(
        last_backup_at=_time(value.get("last_backup_at")),
        last_backup_path=value.get("last_backup_path"),
        last_verified_at=_time(value.get("last_verified_at")),
        last_error=value.get("last_error"),
        last_error_at=_time(value.get("last_error_at")),
        last_backup_id=value.get("last_backup_id"),
    )


async def record_backup(conn: AsyncConnection, *, at: datetime, path: str, backup_id: str) -> None:
    await store.merge_status(
        conn, {"last_backup_at": at.isoformat(), "last_backup_path": path, "last_backup_id": backup_id}
    )


async def record_verified(conn: AsyncConnection, *, at: datetime) -> None:
    await store.merge_status(conn, {"last_verified_at": at.isoformat()})


async def record_error(conn: AsyncConnection, message: str) -> None:
    await store.merge_status(conn, {"last_error": message, "last_error_at": now().isoformat()})


async def clear_error(conn: AsyncConnection) -> None:
    await store.merge_status(conn, {"last_error": None, "last_error_at": None})


def now() -> datetime:
    return datetime.now(UTC)


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None
