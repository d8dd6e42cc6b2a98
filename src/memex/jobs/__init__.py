"""The job queue (procrastinate): task names, and enqueueing inside the caller's transaction.

Enqueueing runs procrastinate's own `defer_jobs` query on the connection that records the document, so the
job exists if and only if that transaction commits: a crash can never lose an accepted upload.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from procrastinate import PsycopgConnector
from procrastinate import jobs as pjobs
from procrastinate.manager import JobManager
from sqlalchemy.ext.asyncio import AsyncConnection

from memex import origin

NAMESPACE = "memex"
INGEST_QUEUE = "ingest"
INGEST_TASK = f"{NAMESPACE}:ingest_document"


async def defer_ingest(conn: AsyncConnection, *, document_ids: Sequence[uuid.UUID], owner: str = "system") -> None:
    """Enqueue one ingestion job per document, in `conn`'s transaction, carrying the current request's id.

    `owner` (see `fairness.owner_of`) takes its turn: its jobs queue behind the ones it already has waiting.
    """
    from memex.jobs import fairness

    if not document_ids:
        return
    ahead = await fairness.waiting(conn, queue=INGEST_QUEUE, task=INGEST_TASK, owner=owner)
    request_id = origin.current().request_id
    extra = {"request_id": request_id} if request_id else {}
    raw = await conn.get_raw_connection()
    # A connector that is never opened: with an explicit connection procrastinate needs no pool of its own.
    manager = JobManager(PsycopgConnector())
    await manager.batch_defer_jobs_async(
        jobs=[
            pjobs.Job(
                id=None,
                queue=INGEST_QUEUE,
                # Jobs of one document run one after the other, never concurrently.
                lock=f"document:{document_id}",
                queueing_lock=None,
                task_name=INGEST_TASK,
                priority=-(ahead + position),
                task_kwargs={"document_id": str(document_id), "owner": owner, **extra},
            )
            for position, document_id in enumerate(document_ids)
        ],
        connection=raw.driver_connection,
    )
