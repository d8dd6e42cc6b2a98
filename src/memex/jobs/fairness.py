"""Fair ingestion: one owner's thousands of queued documents must not hold up everybody else's.

procrastinate runs the waiting job of highest priority first (then the oldest). An ingestion job gets, at
defer time, minus the number of jobs its owner (the uploading user, else "system") already has waiting: an
owner's 1st waiting job has priority 0, its 1000th -999. A user who queues one file after another user
queued thousands is therefore served next, and busy owners take turns, job for job.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from memex.jobs import store
from memex.kbs.access import Actor

SYSTEM = "system"


def owner_of(actor: Actor) -> str:
    """Whose turn a job takes: the user behind the actor (any of their keys or sessions), or the system."""
    return f"user:{actor.user_id}" if actor.user_id is not None else SYSTEM


async def waiting(conn: AsyncConnection, *, queue: str, task: str, owner: str) -> int:
    """How many jobs of `task` the owner has waiting in `queue`."""
    return await store.waiting(conn, queue=queue, task=task, owner=owner)
