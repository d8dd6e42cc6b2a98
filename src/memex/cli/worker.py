"""`memex worker`: standalone job workers, for when `memex serve --no-worker` leaves the jobs to other processes."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from memex.cli.main import run_async, settings_from
from memex.jobs.app import build_app, run_worker
from memex.logging import configure_logging
from memex.runtime import open_runtime
from memex.settings import Settings


async def work_forever(settings: Settings, *, concurrency: int) -> None:
    """Run jobs until SIGINT or SIGTERM; running jobs are let finish."""
    configure_logging(settings)
    runtime = await open_runtime(settings)
    try:
        await runtime.load_embedder()
        jobs_app = build_app(runtime, pool_size=concurrency + 3)
        async with jobs_app.open_async():
            Console(stderr=True).print(f"Memex worker running {concurrency} job(s) at a time (Ctrl-C to stop)")
            await run_worker(jobs_app, concurrency=concurrency, install_signal_handlers=True)
    finally:
        await runtime.close()


def register(app: typer.Typer) -> None:
    @app.command()
    def worker(
        ctx: typer.Context,
        concurrency: Annotated[int, typer.Option("--concurrency", "-c", min=1, max=64, help="Jobs run at a time.")] = 2,
    ) -> None:
        """Run job workers (document ingestion) until Ctrl-C or SIGTERM."""
        settings = settings_from(ctx)
        run_async(lambda: work_forever(settings, concurrency=concurrency))
