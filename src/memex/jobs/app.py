"""The procrastinate App, built from a Runtime (never at import time), and the worker loop `serve` and `worker` run."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import procrastinate
import structlog
from procrastinate import RetryStrategy

from memex import jobs
from memex.db.engine import libpq_url
from memex.jobs import backups, maintenance, tasks
from memex.runtime import Runtime

log = structlog.get_logger("memex.jobs")

# Running jobs get this long to finish on shutdown; the rest are aborted and queued again by `recover`.
SHUTDOWN_GRACE_SECONDS = 30.0
# How long a stopped or crashed background loop (job worker, folder watcher) waits before starting again.
RESTART_SECONDS = 5.0


def build_app(runtime: Runtime, *, retry: RetryStrategy = tasks.RETRY, pool_size: int = 4) -> procrastinate.App:
    """A job app on the runtime's database, with Memex's tasks registered. Open it before running a worker."""
    connector = procrastinate.PsycopgConnector(conninfo=libpq_url(runtime.database_url), min_size=1, max_size=pool_size)
    app = procrastinate.App(connector=connector)
    app.add_tasks_from(tasks.blueprint(runtime, retry=retry), namespace=jobs.NAMESPACE)
    app.add_tasks_from(backups.blueprint(runtime), namespace=jobs.NAMESPACE)
    app.add_tasks_from(maintenance.blueprint(runtime), namespace=jobs.NAMESPACE)
    return app


async def run_worker(
    app: procrastinate.App, *, concurrency: int, wait: bool = True, install_signal_handlers: bool = False
) -> None:
    """Run jobs until cancelled (or, with wait=False, until the queue is empty); the app must be open."""
    await app.run_worker_async(
        name="memex-worker",
        concurrency=concurrency,
        wait=wait,
        install_signal_handlers=install_signal_handlers,
        shutdown_graceful_timeout=SHUTDOWN_GRACE_SECONDS,
    )


async def supervise(name: str, run: Callable[[], Awaitable[None]], stop: asyncio.Event) -> None:
    """Run a background loop until `stop` is set, starting it again whenever it crashes or ends early.

    procrastinate's worker ends (without raising) when its LISTEN connection fails, as when the database restarts:
    a worker that simply returned would leave uploads queued forever.
    """
    while True:
        try:
            await run()
        except asyncio.CancelledError:
            raise
        except Exception:  # a crashed loop must not take the process down; it is logged and started again
            log.exception(f"{name} crashed; restarting", restart_in_s=RESTART_SECONDS)
        else:
            if stop.is_set():
                return
            log.warning(f"{name} stopped unexpectedly; restarting", restart_in_s=RESTART_SECONDS)
        await asyncio.sleep(RESTART_SECONDS)
        if stop.is_set():
            return
