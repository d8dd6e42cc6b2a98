"""`memex serve`: the API server, with its in-process job worker and folders kept indexed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import h11
import structlog
import typer
import uvicorn
from fastapi import FastAPI
from rich.console import Console
from rich.markup import escape
from uvicorn.protocols.http.h11_impl import H11Protocol

from memex.accounts.service import check_auth_config, ensure_admin
from memex.api.app import create_app
from memex.cli import local_server
from memex.cli.kb_resolve import DEFAULT_KB, resolve_kb
from memex.cli.main import EXIT_FATAL, run_async, settings_from
from memex.errors import MemexError
from memex.ingest.folders import index_paths
from memex.jobs.app import build_app, run_worker, supervise
from memex.logging import configure_logging
from memex.runtime import Runtime, open_runtime
from memex.settings import Settings

log = structlog.get_logger("memex.serve")
console = Console(stderr=True)

# Jobs run in the server's event loop; their parsing and embedding run in threads. Two at a time keep a
# large PDF from holding up small files without starving the API of CPU.
IN_PROCESS_CONCURRENCY = 2
# Largest request line and headers accepted. httptools cannot parse URLs over 64 KiB, and h11 stops at 16 KiB by
# default; with h11 and this limit an over-long search query reaches the app and gets a precise JSON error.
MAX_REQUEST_HEAD_BYTES = 256 * 1024

_SERVE_HELP = """Start the server: the API, the web UI and (unless --no-worker) a job worker, in one process.

Uses the embedded Postgres unless MEMEX_DATABASE_URL is set. The first start creates an admin and prints how
to log in. Stops gracefully on Ctrl-C or SIGTERM, letting running jobs finish.
"""


class _HttpProtocol(H11Protocol):
    """uvicorn's h11 protocol, answering a request head over the limit with 431 and a JSON detail, not a bare 400."""

    def send_400_response(self, msg: str) -> None:
        if len(self.conn.trailing_data[0]) <= MAX_REQUEST_HEAD_BYTES:
            super().send_400_response(msg)
            return
        detail = f"the request line and headers are larger than the limit of {MAX_REQUEST_HEAD_BYTES // 1024} KiB"
        body = json.dumps({"detail": detail}).encode()
        headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
        for event in (
            h11.Response(
                status_code=431,
                headers=[*headers, (b"content-length", str(len(body)).encode())],
                reason=b"Request Header Fields Too Large",
            ),
            h11.Data(data=body),
            h11.EndOfMessage(),
        ):
            self.transport.write(self.conn.send(event) or b"")
        self.transport.close()


def server_config(app: FastAPI, settings: Settings) -> uvicorn.Config:
    """How `memex serve` runs uvicorn: with our logging and the request head limit."""
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        log_config=None,  # uvicorn's records go through our structured, redacting logging
        proxy_headers=False,  # the app reads them itself, from MEMEX_TRUSTED_PROXIES only (api/security.py)
        server_header=False,
        http=_HttpProtocol,
        h11_max_incomplete_event_size=MAX_REQUEST_HEAD_BYTES,
    )


class _Server(uvicorn.Server):
    """uvicorn, minus its signal handling: `serve` handles signals itself to stop the worker and watcher too."""

    # Once listening, tell CLI commands on this machine where (cli/local_server.py); None leaves no trace.
    announce_to: Settings | None = None

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self.announce_to is not None and self.servers and self.servers[0].sockets:
            port = self.servers[0].sockets[0].getsockname()[1]
            url = local_server.loopback_url(self.config.host, port)
            if url is not None:
                try:
                    local_server.write_marker(self.announce_to, url=url)
                except OSError as exc:  # the CLI then just works without the server
                    log.warning("cannot tell local commands where the server listens", error=str(exc))


async def _keep_indexed(runtime: Runtime, paths: list[Path], stop: asyncio.Event) -> None:
    """Index the folders now, then again whenever something in them changes."""
    import watchfiles

    kb = await resolve_kb(runtime, DEFAULT_KB, create=True)
    assert kb is not None

    async def index_once() -> None:
        try:
            summary = await index_paths(runtime, kb_id=kb.id, paths=paths)
        except MemexError as exc:
            log.error("indexing folders failed", error=exc.message)
            return
        log.info("folders indexed", kb=kb.name, **{k: v for k, v in summary.as_dict().items() if k != "failed"})
        for failure in summary.failed:
            log.warning("file not indexed", path=failure.path, reason=failure.reason)

    await index_once()
    async for _changes in watchfiles.awatch(*paths, debounce=500, stop_event=stop):
        await index_once()


def _login_lines(settings: Settings, created: list[str]) -> list[str]:
    url = settings.public_url or f"http://{settings.host}:{settings.port}/"
    lines = [*created, f"Memex is serving on {url}"]
    if created:
        lines.append(f"Log in at {url} with that email and password.")
    return lines


async def serve_forever(settings: Settings, *, paths: list[Path], worker: bool) -> None:
    """Run the server until SIGINT or SIGTERM, then stop the watcher, let running jobs finish, and close."""
    configure_logging(settings)
    runtime = await open_runtime(settings)
    try:
        bootstrap = await ensure_admin(runtime)
        for line in _login_lines(settings, bootstrap.lines() if bootstrap else []):
            console.print(escape(line), highlight=False, soft_wrap=True)
        server = _Server(server_config(create_app(settings, runtime=runtime), settings))
        server.announce_to = settings
        stop = asyncio.Event()

        def on_signal() -> None:
            if server.should_exit:
                server.force_exit = True  # a second Ctrl-C: stop now, without waiting for connections
            server.should_exit = True
            stop.set()

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)

        background: list[asyncio.Task[None]] = []
        jobs_app = build_app(runtime) if worker else None
        if jobs_app is not None:
            await jobs_app.open_async()
            background.append(
                asyncio.create_task(
                    supervise("job worker", lambda: run_worker(jobs_app, concurrency=IN_PROCESS_CONCURRENCY), stop)
                )
            )
        if paths:
            background.append(
                asyncio.create_task(supervise("folder indexer", lambda: _keep_indexed(runtime, paths, stop), stop))
            )
        try:
            await server.serve()
        finally:
            local_server.remove_marker(settings)
            stop.set()
            for task in background:
                task.cancel()  # the worker turns this into a graceful stop: running jobs finish first
            await asyncio.gather(*background, return_exceptions=True)
            if jobs_app is not None:
                await jobs_app.close_async()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
    finally:
        await runtime.close()


def register(app: typer.Typer) -> None:
    @app.command(help=_SERVE_HELP)
    def serve(
        ctx: typer.Context,
        host: Annotated[
            str | None, typer.Option("--host", help="Address to listen on (default: MEMEX_HOST, 127.0.0.1).")
        ] = None,
        port: Annotated[
            int | None, typer.Option("--port", min=1, max=65535, help="Port to listen on (default: MEMEX_PORT, 8420).")
        ] = None,
        index: Annotated[
            list[Path] | None,
            typer.Option("--index", help="Keep this folder indexed into the 'default' KB, watching it (repeatable)."),
        ] = None,
        no_worker: Annotated[
            bool, typer.Option("--no-worker", help="Do not run jobs here (run `memex worker`).")
        ] = False,
    ) -> None:
        settings = settings_from(ctx)
        updates = {key: value for key, value in (("host", host), ("port", port)) if value is not None}
        settings = settings.model_copy(update=updates)
        paths = [p.expanduser() for p in index or []]
        for path in paths:
            if not path.exists():
                console.print(f"[red]error:[/red] path does not exist: {escape(str(path))}", highlight=False)
                raise typer.Exit(EXIT_FATAL)
        try:
            check_auth_config(settings)
        except MemexError as exc:
            console.print(f"[red]error:[/red] {escape(exc.message)}", highlight=False, soft_wrap=True)
            raise typer.Exit(EXIT_FATAL) from exc
        run_async(lambda: serve_forever(settings, paths=paths, worker=not no_worker))
