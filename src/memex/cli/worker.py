"""`memex worker`: standalone job workers, for when `memex serve --no-worker` leaves the jobs to other processes."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import signal
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Annotated

import structlog
import typer
import uvicorn
from rich.console import Console

from memex.api.routes.metrics import PATH, create_metrics_app
from memex.cli.main import run_async, settings_from
from memex.errors import ConfigurationError
from memex.jobs.app import build_app, run_worker, supervise
from memex.logging import configure_logging
from memex.runtime import Runtime, open_runtime
from memex.settings import Settings

log = structlog.get_logger("memex.worker")


class _MetricsServer(uvicorn.Server):
    """uvicorn without its signal handlers: the job worker's handlers stop the process, this server with it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serve_metrics(runtime: Runtime, *, host: str, port: int) -> AsyncIterator[str]:
    """Serve the worker's /metrics on host:port (same access rule as the API's) while the block runs."""
    if not runtime.settings.metrics:
        raise ConfigurationError(
            "--metrics-port serves metrics, but metrics are turned off (MEMEX_METRICS=false): turn them on, or leave "
            "out --metrics-port"
        )
    try:
        # Bound here, so that a port in use is a clear error rather than uvicorn exiting the process.
        sock = socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET)
    except OSError as exc:
        raise ConfigurationError(f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}") from exc
    if runtime.settings.metrics_token is None and not _loopback(host):
        log.warning("metrics: scrapes from other hosts are refused (404) unless MEMEX_METRICS_TOKEN is set", host=host)
    config = uvicorn.Config(
        create_metrics_app(runtime), log_config=None, log_level="warning", access_log=False, lifespan="off"
    )
    server = _MetricsServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        shown = f"[{host}]" if ":" in host else host
        yield f"http://{shown}:{sock.getsockname()[1]}{PATH}"
    finally:
        server.should_exit = True
        await task
        sock.close()


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


async def work_forever(settings: Settings, *, concurrency: int, metrics_host: str, metrics_port: int | None) -> None:
    """Run jobs until SIGINT or SIGTERM; running jobs are let finish."""
    configure_logging(settings)
    runtime = await open_runtime(settings)
    console = Console(stderr=True)
    try:
        async with contextlib.AsyncExitStack() as stack:
            if metrics_port is not None:
                url = await stack.enter_async_context(serve_metrics(runtime, host=metrics_host, port=metrics_port))
                console.print(f"Worker metrics at {url}", highlight=False)
            await runtime.load_embedder()
            jobs_app = build_app(runtime, pool_size=concurrency + 3)
            await stack.enter_async_context(jobs_app.open_async())
            console.print(f"Memex worker running {concurrency} job(s) at a time (Ctrl-C to stop)")
            stop = asyncio.Event()
            worker = asyncio.create_task(
                supervise("job worker", lambda: run_worker(jobs_app, concurrency=concurrency), stop)
            )

            def on_signal() -> None:
                stop.set()
                worker.cancel()  # the worker turns this into a graceful stop: running jobs finish first

            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, on_signal)
            try:
                await asyncio.gather(worker, return_exceptions=True)
            finally:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(sig)
    finally:
        await runtime.close()


def register(app: typer.Typer) -> None:
    @app.command()
    def worker(
        ctx: typer.Context,
        concurrency: Annotated[int, typer.Option("--concurrency", "-c", min=1, max=64, help="Jobs run at a time.")] = 2,
        metrics_port: Annotated[
            int | None,
            typer.Option(
                "--metrics-port", min=1, max=65535, help="Serve this worker's Prometheus metrics at /metrics here."
            ),
        ] = None,
        metrics_host: Annotated[
            str,
            typer.Option(
                "--metrics-host",
                help="Address of the metrics port. Other hosts may scrape only with MEMEX_METRICS_TOKEN.",
            ),
        ] = "127.0.0.1",
    ) -> None:
        """Run job workers (document ingestion) until Ctrl-C or SIGTERM."""
        settings = settings_from(ctx)
        run_async(
            lambda: work_forever(
                settings, concurrency=concurrency, metrics_host=metrics_host, metrics_port=metrics_port
            )
        )
