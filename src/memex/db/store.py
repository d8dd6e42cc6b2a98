"""SQL about the database itself rather than one aggregate: reachability, advisory locks, database-wide gauges."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

# Database-wide readings for the scrape-time gauges, in one round trip. Queue depth counts live jobs only
# (finished ones are history); the oldest queued age is that of the longest-waiting job that is due, through
# procrastinate's indexes (jobs deferred without a schedule are taken in id order).
_GAUGES = sa.text(
    """
SELECT
  (SELECT count(*) FROM procrastinate_jobs WHERE status = 'todo') AS queued,
  (SELECT count(*) FROM procrastinate_jobs WHERE status = 'doing') AS running,
  coalesce(extract(epoch FROM now() - least(
    (SELECT min(scheduled_at) FROM procrastinate_jobs WHERE status = 'todo' AND scheduled_at <= now()),
    (SELECT (SELECT max(e.at) FROM procrastinate_events e WHERE e.job_id = j.id)
       FROM procrastinate_jobs j WHERE j.status = 'todo' AND j.scheduled_at IS NULL ORDER BY j.id LIMIT 1)
  )), 0) AS oldest_queued_seconds,
  (SELECT coalesce(sum(chunks), 0) FROM kb_chunk_stats) AS vectors,
  (SELECT coalesce(json_object_agg(status, n), '{}') FROM (SELECT status, count(*) AS n FROM documents GROUP BY status) s)
    AS documents,
  (SELECT coalesce(sum(size), 0) FROM blobs) AS blob_bytes,
  pg_database_size(current_database()) AS database_bytes,
  (SELECT coalesce(extract(epoch FROM (value->>'last_backup_at')::timestamptz), 0) FROM memex_meta
    WHERE key = 'backup_status') AS backup_at,
  (SELECT coalesce(extract(epoch FROM (value->>'last_verified_at')::timestamptz), 0) FROM memex_meta
    WHERE key = 'backup_status') AS backup_verified_at
"""
)


async def ping(conn: AsyncConnection) -> None:
    """One round trip: raises if the database cannot answer."""
    await conn.execute(sa.text("SELECT 1"))


async def try_advisory_lock(conn: AsyncConnection, key: int) -> bool:
    """Take the session-level advisory lock `key` if nobody holds it; True when taken."""
    return bool((await conn.execute(sa.text("SELECT pg_try_advisory_lock(:id)"), {"id": key})).scalar())


async def advisory_unlock(conn: AsyncConnection, key: int) -> None:
    await conn.execute(sa.text("SELECT pg_advisory_unlock(:id)"), {"id": key})


async def advisory_xact_lock(conn: AsyncConnection, key: int) -> None:
    """Wait for the advisory lock `key`, held until the transaction ends."""
    await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


async def gauges(conn: AsyncConnection) -> sa.Row[tuple[object, ...]]:
    """The database-wide readings the metrics expose (queue, vectors, documents, storage, backups)."""
    return (await conn.execute(_GAUGES)).one()
