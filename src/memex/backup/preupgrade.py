"""The backup made before a schema migration, when the database holds data (MEMEX_BACKUP_BEFORE_MIGRATE).

`migrate.upgrade` calls the hook under the migration lock, so of many processes starting together exactly one
backs up, and only if a migration is due.
"""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import structlog

from memex.backup import store
from memex.backup.create import backup_dir, create_sync
from memex.db.engine import libpq_url
from memex.errors import BackupError
from memex.settings import Settings

log = structlog.get_logger("memex.backup")


def hook(settings: Settings) -> Callable[[str, str | None], None] | None:
    """The function `migrate.upgrade` runs before migrating, or None when the setting is off."""
    if not settings.backup_before_migrate:
        return None

    def before(url: str, revision: str | None) -> None:
        if revision is None:
            return  # a new, empty database
        with psycopg.connect(libpq_url(url), autocommit=True) as conn:
            if not store.has_data(conn):
                return
        try:
            created = create_sync(settings, url=url, out_dir=backup_dir(settings), reason="pre-upgrade")
        except BackupError as exc:
            raise BackupError(
                f"the database needs migrating from schema revision {revision}, and the backup made first failed: "
                f"{exc.message}. Nothing was migrated. Fix this, or set MEMEX_BACKUP_BEFORE_MIGRATE=false to migrate "
                "without a backup"
            ) from exc
        with psycopg.connect(libpq_url(url), autocommit=True) as conn:
            store.merge_status_sync(
                conn,
                {
                    "last_backup_at": created.finished_at.isoformat(),
                    "last_backup_path": str(created.path),
                    "last_backup_id": created.backup_id,
                },
            )
        log.warning("backed up before migrating", path=str(created.path), schema_revision=revision, bytes=created.size)

    return before
