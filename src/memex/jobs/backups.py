"""The scheduled backup (MEMEX_BACKUP_SCHEDULE): create, verify and prune, one at a time across all workers.

Procrastinate defers a periodic job once per tick whatever the number of workers; a session advisory lock
makes sure two runs never overlap even when one runs past the next tick.
"""

from __future__ import annotations

import structlog
from procrastinate import Blueprint, JobContext

from memex.backup import create, retention, status, verify
from memex.db import store as db_store
from memex.errors import MemexError
from memex.runtime import Runtime

BACKUP_QUEUE = "backups"
# Arbitrary but fixed: every Memex worker running a scheduled backup takes this same lock.
BACKUP_LOCK_ID = 7_302_651_077_890
log = structlog.get_logger("memex.backup")


def blueprint(runtime: Runtime) -> Blueprint:
    """The backup task, scheduled only when MEMEX_BACKUP_SCHEDULE is set."""
    bp = Blueprint()

    @bp.task(name="backup", queue=BACKUP_QUEUE, queueing_lock="backup", pass_context=True)
    async def backup(context: JobContext, timestamp: int | None = None) -> None:
        """Back up the database, verify the archive, and prune the folder."""
        await run_scheduled_backup(runtime)

    if runtime.settings.backup_schedule:
        bp.periodic(cron=runtime.settings.backup_schedule)(backup)
    return bp


async def run_scheduled_backup(runtime: Runtime) -> bool:
    """One scheduled backup; returns False when another worker's is still running. Failures are recorded."""
    async with runtime.engine.connect() as lock_conn:
        got = await db_store.try_advisory_lock(lock_conn, BACKUP_LOCK_ID)
        await lock_conn.commit()
        if not got:
            log.info("scheduled backup skipped: another one is running")
            return False
        try:
            await _backup_verify_prune(runtime)
        finally:
            await db_store.advisory_unlock(lock_conn, BACKUP_LOCK_ID)
            await lock_conn.commit()
    return True


async def _backup_verify_prune(runtime: Runtime) -> None:
    settings = runtime.settings
    folder = create.backup_dir(settings)
    try:
        created = await create.create(
            settings, url=runtime.database_url, out_dir=folder, reason="scheduled", embedder=runtime.embedder
        )
        await create.record_created(runtime.database_url, created)
        log.info("scheduled backup written", path=str(created.path), bytes=created.size)
        result = await verify.verify(settings, created.path, embedder=runtime.embedder)
        if not result.ok:
            raise MemexError(f"the backup {created.path.name} failed verification: {result.reason}")
        async with runtime.engine.begin() as conn:
            await status.record_verified(conn, at=status.now())
            await status.clear_error(conn)
        kept, deleted = retention.prune(
            folder, keep_days=settings.backup_keep_days, keep_last=settings.backup_keep_last, now=status.now()
        )
        log.info("scheduled backup verified", path=str(created.path), kept=len(kept), pruned=len(deleted))
    except MemexError as exc:
        log.error("scheduled backup failed", error=exc.message)
        async with runtime.engine.begin() as conn:
            await status.record_error(conn, exc.message)
        raise
