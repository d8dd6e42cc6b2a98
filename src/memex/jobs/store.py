"""SQL over procrastinate's job queue that Memex reads itself: an owner's waiting jobs, the queue's counts."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

_WAITING = sa.text(
    "SELECT count(*) FROM procrastinate_jobs "
    "WHERE status = 'todo' AND queue_name = :queue AND task_name = :task AND args ->> 'owner' = :owner"
)


async def waiting(conn: AsyncConnection, *, queue: str, task: str, owner: str) -> int:
    """How many jobs of `task` the owner has waiting in `queue`."""
    return int((await conn.execute(_WAITING, {"queue": queue, "task": task, "owner": owner})).scalar_one())


async def counts(conn: AsyncConnection) -> tuple[int, int]:
    """Jobs queued and jobs running, across every queue."""
    row = (
        await conn.execute(
            sa.text(
                "SELECT count(*) FILTER (WHERE status = 'todo') AS queued, "
                "count(*) FILTER (WHERE status = 'doing') AS running FROM procrastinate_jobs"
            )
        )
    ).one()
    return int(row.queued), int(row.running)
