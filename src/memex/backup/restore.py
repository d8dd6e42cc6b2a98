"""`backup restore`: load an archive into the configured database, then migrate it to this Memex's schema.

The archive is read and checked whole before anything is touched. A database that holds data is refused
unless `force`; then everything in its public schema is replaced, in the same transaction as the load, so a
failed restore leaves the database as it was.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from memex import jobs
from memex.audit import service as audit
from memex.audit.models import Action
from memex.backup import load, pgtools, store
from memex.backup.archive import read_header
from memex.backup.create import passphrase
from memex.backup.models import NoProgress, Progress
from memex.db import migrate
from memex.db.engine import libpq_url, sqlalchemy_url
from memex.embeddings import spec
from memex.errors import BackupError
from memex.settings import Settings

BACKUP_TASK = f"{jobs.NAMESPACE}:backup"


@dataclass
class Restored:
    path: Path
    backup_id: str | None
    from_revision: str | None
    to_revision: str
    migrated: bool
    tables: dict[str, int]
    seconds: float
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "path": str(self.path),
            "backup_id": self.backup_id,
            "schema_revision": self.from_revision,
            "migrated_to": self.to_revision if self.migrated else None,
            "rows": sum(self.tables.values()),
            "tables": self.tables,
            "seconds": round(self.seconds, 3),
            "warnings": self.warnings,
        }


async def restore(
    settings: Settings, path: Path, *, url: str, force: bool, progress: Progress | None = None
) -> Restored:
    """Restore the archive at `path` into the database at `url` (see the module docstring)."""
    started = time.perf_counter()
    restored = await asyncio.to_thread(_restore, settings, path, url, force, progress or NoProgress())
    engine = create_async_engine(sqlalchemy_url(url), poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            await audit.record(
                conn,
                action=Action.backup_restored,
                actor=None,
                target_type="backup",
                target_id=restored.backup_id,
                detail={"file": path.name, "schema_revision": restored.from_revision, "migrated": restored.migrated},
            )
            if restored.tables:
                model = (
                    await conn.execute(sa.text("SELECT value FROM memex_meta WHERE key = 'embedding_model'"))
                ).scalar_one_or_none()
                if model is not None and not spec.same_model(model, settings):
                    restored.warnings.append(
                        f"the restored embeddings come from {model['name']} ({model['dimension']} dimensions) but Memex "
                        f"is configured for {settings.embedding_model}: set MEMEX_EMBEDDING_MODEL back, or run `memex reembed`"
                    )
    finally:
        await engine.dispose()
    restored.seconds = time.perf_counter() - started
    return restored


def _restore(settings: Settings, path: Path, url: str, force: bool, progress: Progress) -> Restored:
    secret = passphrase(settings)
    try:
        with open(path, "rb") as f:
            header = read_header(f)
    except OSError as exc:
        raise BackupError(f"cannot read {path}: {exc.strerror or exc}") from exc
    manifest = load.check_archive(path, passphrase=secret, progress=progress)
    with _connect(url) as conn:
        number = store.server_version_num(conn)
        tools = pgtools.find_tools(
            pgtools.major_of(number),
            pgtools.describe(number),
            configured=settings.backup_pg_bin_dir,
            embedded=settings.embedded,
        )
        if store.has_data(conn) and not force:
            raise BackupError(
                "the database already holds data, and restoring would replace all of it: stop every Memex process "
                "using it, then run `memex backup restore --force` to replace it (or restore into an empty database)"
            )
        replace = bool(store.tables(conn))
    load.load(path, url=url, tools=tools, passphrase=secret, replace=replace, progress=progress)
    warnings: list[str] = []
    with _connect(url) as conn:
        counts = store.row_counts(conn)
        expected: dict[str, Any] = manifest.get("tables", {})
        wrong = [name for name, rows in expected.items() if counts.get(name) != rows]
        if wrong:
            warnings.append(f"row counts differ from the manifest in: {', '.join(sorted(wrong))}")
        store.forget_running_backup_jobs(conn, task_name=BACKUP_TASK)
    migrated = migrate.upgrade(url)
    return Restored(
        path=path,
        backup_id=header.fields.get("backup_id"),
        from_revision=manifest.get("schema_revision"),
        to_revision=migrate.head_revision(),
        migrated=migrated,
        tables=counts,
        seconds=0.0,
        warnings=warnings,
    )


def _connect(url: str) -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(libpq_url(url), autocommit=True)
    except psycopg.OperationalError as exc:
        raise BackupError(f"cannot reach the database to restore into: {str(exc).strip()}") from exc
