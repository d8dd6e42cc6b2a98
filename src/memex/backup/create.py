"""`backup create`: one pass of `pg_dump` (custom format) through checksums and encryption into an archive.

The dump, the row counts, the sample searches and the manifest all come from one exported snapshot, so an
archive made while documents are being ingested is exactly one consistent moment of the database.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from memex.audit import service as audit
from memex.audit.models import Action
from memex.backup import pgtools, samples, status, store
from memex.backup.archive import ArchiveWriter
from memex.backup.models import Created, NoProgress, Progress, memex_version
from memex.db.engine import libpq_url, sqlalchemy_url
from memex.db.migrate import head_revision
from memex.embeddings import spec
from memex.embeddings.base import Embedder
from memex.errors import BackupError
from memex.settings import Settings

SUFFIX = ".backup"
_READ_BYTES = 1 << 20


@dataclass
class _Snapshot:
    conn: psycopg.Connection[Any]
    snapshot: str
    tools: pgtools.Tools
    server_version: str
    revision: str | None
    counts: dict[str, int]
    model: dict[str, Any] | None
    titles: list[str]


def backup_dir(settings: Settings) -> Path:
    return settings.backup_dir if settings.backup_dir is not None else settings.data_dir / "backups"


def passphrase(settings: Settings) -> str | None:
    return settings.backup_key.get_secret_value() if settings.backup_key else None


async def create(
    settings: Settings,
    *,
    url: str,
    out_dir: Path,
    reason: str = "manual",
    embedder: Embedder | None = None,
    progress: Progress | None = None,
) -> Created:
    """Write a new archive of the database at `url` into `out_dir`; returns what was written."""
    progress = progress or NoProgress()
    started = datetime.now(UTC)
    snap = await asyncio.to_thread(_open_snapshot, settings, url)
    try:
        found: list[dict[str, Any]] = []
        if snap.titles and snap.revision == head_revision():
            same_model = spec.same_model(snap.model, settings)
            # Without `embedder` the runtime loads the configured model, on the first hybrid search only.
            async with samples.search_runtime(settings, url, embedder=embedder, snapshot=snap.snapshot) as runtime:
                found = await samples.record(runtime, snap.titles, hybrid=same_model)
        return await asyncio.to_thread(
            _write, settings, url, snap, out_dir=out_dir, reason=reason, started=started, found=found, progress=progress
        )
    finally:
        await asyncio.to_thread(snap.conn.close)


def create_sync(settings: Settings, *, url: str, out_dir: Path, reason: str) -> Created:
    """`create` without sample searches, for callers outside an event loop (the pre-upgrade backup)."""
    started = datetime.now(UTC)
    snap = _open_snapshot(settings, url, titles=False)
    try:
        return _write(
            settings, url, snap, out_dir=out_dir, reason=reason, started=started, found=[], progress=NoProgress()
        )
    finally:
        snap.conn.close()


async def record_created(url: str, created: Created) -> None:
    """Note the backup in the database it was made of: the status `doctor` and the metrics read, and the audit log."""
    engine = create_async_engine(sqlalchemy_url(url), poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            await status.record_backup(
                conn, at=created.finished_at, path=str(created.path), backup_id=created.backup_id
            )
            if created.schema_revision == head_revision():
                await audit.record(
                    conn,
                    action=Action.backup_created,
                    actor=None,
                    target_type="backup",
                    target_id=created.backup_id,
                    detail={"file": created.path.name, "bytes": created.size, "encrypted": created.encrypted},
                )
    finally:
        await engine.dispose()


def _open_snapshot(settings: Settings, url: str, *, titles: bool = True) -> _Snapshot:
    try:
        conn = psycopg.connect(libpq_url(url), autocommit=True)
    except psycopg.OperationalError as exc:
        raise BackupError(f"cannot reach the database to back it up: {str(exc).strip()}") from exc
    try:
        number = store.server_version_num(conn)
        tools = pgtools.find_tools(
            pgtools.major_of(number),
            pgtools.describe(number),
            configured=settings.backup_pg_bin_dir,
            embedded=settings.embedded,
        )
        snapshot = store.export_snapshot(conn)
        revision = store.revision(conn)
        tables = store.tables(conn)
        return _Snapshot(
            conn=conn,
            snapshot=snapshot,
            tools=tools,
            server_version=pgtools.describe(number),
            revision=revision,
            counts=store.row_counts(conn),
            model=store.embedding_model(conn),
            titles=store.sample_titles(conn, limit=samples.QUERIES) if titles and "documents" in tables else [],
        )
    except BaseException:
        conn.close()
        raise


def _write(
    settings: Settings,
    url: str,
    snap: _Snapshot,
    *,
    out_dir: Path,
    reason: str,
    started: datetime,
    found: list[dict[str, Any]],
    progress: Progress,
) -> Created:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BackupError(f"cannot create the backup folder {out_dir}: {exc.strerror or exc}") from exc
    backup_id = uuid.uuid4().hex
    tag = "" if reason == "manual" else f"{reason}-"
    final = out_dir / f"memex-{started:%Y%m%dT%H%M%SZ}-{tag}{backup_id[:8]}{SUFFIX}"
    partial = final.with_name(final.name + ".partial")
    secret = passphrase(settings)
    header = {
        "backup_id": backup_id,
        "created_at": started.isoformat(),
        "memex_version": memex_version(),
        "schema_revision": snap.revision,
        "postgres": snap.server_version,
        "reason": reason,
    }
    target = pgtools.target(url)
    progress.start("dumping", None)
    try:
        with open(partial, "wb") as out, tempfile.TemporaryFile() as errors:
            writer = ArchiveWriter(out, header, passphrase=secret)
            dump = subprocess.Popen(
                [
                    snap.tools.path("pg_dump"),
                    "--format=custom",
                    f"--snapshot={snap.snapshot}",
                    "--no-password",
                    f"--dbname={target.conninfo}",
                ],
                stdout=subprocess.PIPE,
                stderr=errors,
                env=target.env,
            )
            assert dump.stdout is not None
            try:
                while chunk := dump.stdout.read(_READ_BYTES):
                    writer.dump(chunk)
                    progress.advance(len(chunk))
            finally:
                dump.stdout.close()
                code = dump.wait()
            if code != 0:
                errors.seek(0)
                message = pgtools.stderr_tail(errors.read().decode(errors="replace"))
                raise BackupError(f"pg_dump failed (exit status {code}): {message}")
            finished = datetime.now(UTC)
            writer.finish(
                {
                    "format": 1,
                    "backup_id": backup_id,
                    "memex_version": memex_version(),
                    "schema_revision": snap.revision,
                    "embedding_model": snap.model,
                    "postgres": {"server": snap.server_version, "pg_dump": snap.tools.version},
                    "reason": reason,
                    "started_at": started.isoformat(),
                    "finished_at": finished.isoformat(),
                    "tables": snap.counts,
                    "members": {
                        "database.dump": {
                            "bytes": writer.dump_bytes,
                            "sha256": writer.dump_sha256.hexdigest(),
                            "format": "pg_dump custom",
                        }
                    },
                    "header_sha256": writer.header_digest.hex(),
                    "samples": found,
                }
            )
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, final)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise BackupError(f"cannot write the backup to {out_dir}: {exc.strerror or exc}") from exc
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return Created(
        path=final,
        backup_id=backup_id,
        size=final.stat().st_size,
        dump_bytes=writer.dump_bytes,
        dump_sha256=writer.dump_sha256.hexdigest(),
        started_at=started,
        finished_at=finished,
        schema_revision=snap.revision,
        tables=snap.counts,
        samples=len(found),
        encrypted=secret is not None,
    )
