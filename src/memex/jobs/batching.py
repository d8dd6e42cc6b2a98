"""An ingestion job takes the next waiting ones with it, so that their chunks are embedded in full batches.

The model embeds a batch of 256 chunks much faster per chunk than one document's handful, so a job that starts
claims the ingestion jobs the queue would hand out next, in the queue's own order (priority, then age: the
per-owner turns of `fairness.py` stay as they are), and indexes their documents with its own. Claimed jobs are
marked running under the claiming job's worker, as procrastinate's own fetch does: if that worker dies they are
stalled like any of its jobs and run again; when the batch is done each is finished on its own.

These statements call procrastinate's SQL functions (`procrastinate_finish_job_v1`, `procrastinate_retry_job_v1`)
and mirror its fetch query (`procrastinate_fetch_job_v2`): they change only with a procrastinate upgrade.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

# Documents one job indexes at most, and their bytes: enough for full embedding batches of typical files,
# few enough that another owner's turn comes soon.
MAX_DOCUMENTS = 32
MAX_BYTES = 4 * 1024 * 1024

_CLAIM = sa.text(
    """
    WITH candidate AS (
        SELECT j.id, j.priority, d.size
        FROM procrastinate_jobs j
        JOIN documents d ON d.id = CAST(j.args ->> 'document_id' AS uuid)
        WHERE j.status = 'todo' AND j.queue_name = :queue AND j.task_name = :task AND j.attempts = 0
          AND (j.scheduled_at IS NULL OR j.scheduled_at <= now())
          AND d.status = 'queued'
          -- as procrastinate's fetch: never a job whose document has an earlier or running job
          AND NOT EXISTS (
              SELECT 1 FROM procrastinate_jobs o
              WHERE j.lock IS NOT NULL AND o.lock = j.lock AND o.id <> j.id
                AND (o.status = 'doing' OR (o.status = 'todo' AND (o.priority > j.priority
                     OR (o.priority = j.priority AND o.id < j.id))))
          )
        ORDER BY j.priority DESC, j.id ASC
        LIMIT :limit
        FOR UPDATE OF j SKIP LOCKED
    ), taken AS (
        SELECT id FROM (
            SELECT id, sum(size) OVER (ORDER BY priority DESC, id) AS total FROM candidate
        ) running
        WHERE total <= :max_bytes
    )
    UPDATE procrastinate_jobs p
    SET status = 'doing', worker_id = (SELECT worker_id FROM procrastinate_jobs WHERE id = :claimant)
    FROM taken
    WHERE p.id = taken.id
    RETURNING p.id, p.priority, CAST(p.args ->> 'document_id' AS uuid) AS document_id
    """
)


@dataclass(frozen=True, slots=True)
class Claimed:
    job_id: int
    priority: int
    document_id: uuid.UUID


async def claim_next(
    conn: AsyncConnection, *, claimant: int, queue: str, task: str, limit: int, max_bytes: int = MAX_BYTES
) -> list[Claimed]:
    """Take up to `limit` waiting ingestion jobs, the next the queue would run, as running under `claimant`'s worker."""
    if limit <= 0:
        return []
    rows = await conn.execute(
        _CLAIM, {"queue": queue, "task": task, "limit": limit, "max_bytes": max_bytes, "claimant": claimant}
    )
    return sorted(
        (Claimed(job_id=r.id, priority=r.priority, document_id=r.document_id) for r in rows),
        key=lambda c: (-c.priority, c.job_id),
    )


async def finish(conn: AsyncConnection, *, job_ids: list[int]) -> None:
    """Mark claimed jobs succeeded (their documents are indexed, failed with a reason, or no longer waiting)."""
    for job_id in job_ids:
        await conn.execute(sa.text("SELECT procrastinate_finish_job_v1(:id, 'succeeded', false)"), {"id": job_id})


async def retry(conn: AsyncConnection, *, job_ids: list[int], wait_seconds: float) -> None:
    """Put claimed jobs back in the queue as a failed attempt: each then runs alone, under its retry strategy."""
    for job_id in job_ids:
        await conn.execute(
            sa.text("SELECT procrastinate_retry_job_v1(:id, now() + make_interval(secs => :wait), NULL, NULL, NULL)"),
            {"id": job_id, "wait": wait_seconds},
        )
