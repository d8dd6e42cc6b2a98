"""A database connection dropped in the middle of a request: the backend that waits on a lock is terminated.

The test holds `lock` (say `LOCK TABLE messages IN ACCESS EXCLUSIVE MODE`) in a transaction of its own; the
first backend that queues behind it is ended with pg_terminate_backend, as a restart or a failover ends it,
and the lock is released. So the failure lands on one known statement, inside a transaction that has begun.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import psycopg

from memex.db.engine import libpq_url

_BLOCKED = "SELECT pid, query FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))"


@dataclass
class Dropped:
    """What was ended: the statement that was waiting (empty until then)."""

    statements: list[str] = field(default_factory=list)


@contextlib.asynccontextmanager
async def dropped_mid_request(database_url: str, lock: str, *, timeout: float = 60) -> AsyncIterator[Dropped]:
    """Inside the block, end the connection of the first statement that waits for `lock`."""
    url = libpq_url(database_url)
    dropped = Dropped()
    locker = await psycopg.AsyncConnection.connect(url)
    await locker.execute(lock)
    # A separate autocommit connection: pg_stat_activity is a snapshot kept for the length of a transaction.
    watcher = await psycopg.AsyncConnection.connect(url, autocommit=True)

    async def terminate_the_waiter() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            row = await (await watcher.execute(_BLOCKED, (locker.info.backend_pid,))).fetchone()
            if row is not None:
                # Recorded first: the request may have answered before this task runs again.
                dropped.statements.append(row[1])
                await watcher.execute("SELECT pg_terminate_backend(%s)", (row[0],))
                break
            await asyncio.sleep(0.02)
        await locker.rollback()  # whatever the request does next must not wait behind the test

    task = asyncio.create_task(terminate_the_waiter())
    try:
        yield dropped
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await locker.close()
        await watcher.close()


@contextlib.contextmanager
def dropped_in_thread(database_url: str, lock: str, *, timeout: float = 120) -> Iterator[Dropped]:
    """The same for code that runs in another process (the CLI): the watching runs in a thread."""
    import threading

    url = libpq_url(database_url)
    dropped = Dropped()
    stop = threading.Event()
    locker = psycopg.connect(url)
    locker.execute(lock)

    def terminate_the_waiter() -> None:
        with psycopg.connect(url, autocommit=True) as watcher:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and not stop.is_set():
                row = watcher.execute(_BLOCKED, (locker.info.backend_pid,)).fetchone()
                if row is not None:
                    dropped.statements.append(row[1])
                    watcher.execute("SELECT pg_terminate_backend(%s)", (row[0],))
                    break
                time.sleep(0.02)
        locker.rollback()

    thread = threading.Thread(target=terminate_the_waiter)
    thread.start()
    try:
        yield dropped
    finally:
        stop.set()
        thread.join()
        locker.close()
