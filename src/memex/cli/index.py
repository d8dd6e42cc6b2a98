"""`memex index`: keep a knowledge base in step with files and folders."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from memex.cli import remote
from memex.cli.kb_resolve import DEFAULT_KB, resolve_kb
from memex.cli.main import EXIT_FATAL, EXIT_OK, EXIT_PARTIAL, run_async, settings_from
from memex.cli.remote import RemoteClient
from memex.ingest.folders import IndexSummary, ProgressSink, index_paths
from memex.runtime import Runtime, open_runtime
from memex.safe_text import for_terminal

_HELP = """Index files or folders (recursively) into a knowledge base, incrementally.

Unchanged files are skipped, changed ones replaced atomically, moved ones recognised by content,
and files gone from the folder removed.

Exit status: 0 when every file was indexed, 2 when some files failed (each is listed with its
reason), 1 on a fatal error (a path that does not exist, the database unreachable).
"""


class _BarProgress(ProgressSink):
    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._task = progress.add_task("scanning", total=None)

    def planned(self, total: int) -> None:
        self._progress.update(self._task, total=total, description="indexing")

    def advance(self, outcome: str, path: str) -> None:
        name = Path(path).name if path else ""
        self._progress.update(self._task, advance=1, description=f"{outcome:>9} {escape(for_terminal(name))[:40]}")


def _print_summary(console: Console, summary: IndexSummary) -> None:
    table = Table(show_header=False, box=None)
    for label in ("added", "updated", "unchanged", "renamed", "removed", "skipped"):
        table.add_row(label, str(getattr(summary, label)))
    table.add_row("failed", f"[red]{len(summary.failed)}[/red]" if summary.failed else "0")
    console.print(table)
    for failure in summary.failed:
        shown = f"{escape(for_terminal(failure.path))}: {escape(for_terminal(failure.reason))}"
        console.print(f"  [red]✗[/red] {shown}", highlight=False)
    console.print(f"{summary.chunks} chunks embedded in {summary.seconds:.1f} s")


async def _with_progress(console: Console, run: Callable[[ProgressSink], Awaitable[IndexSummary]]) -> IndexSummary:
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as progress:
        return await run(_BarProgress(progress))


def _report(console: Console, summary: IndexSummary, *, json_out: bool) -> None:
    if json_out:
        typer.echo(json.dumps(summary.as_dict()))
    else:
        _print_summary(console, summary)


async def _index_once(
    runtime: Runtime, kb_id: object, paths: list[Path], *, json_out: bool, console: Console
) -> IndexSummary:
    summary = await _with_progress(
        console,
        lambda sink: index_paths(runtime, kb_id=kb_id, paths=paths, progress=sink),  # type: ignore[arg-type]
    )
    _report(console, summary, json_out=json_out)
    return summary


async def _index_remote(
    client: RemoteClient, kb: str, paths: list[Path], *, watch: bool, json_out: bool, console: Console
) -> int:
    """`index --url`: sync the folders to a KB on a server, uploading only what it lacks."""
    found = await client.find_kb(kb, create=True)
    assert found is not None

    async def once() -> IndexSummary:
        summary = await _with_progress(
            console, lambda sink: remote.sync(client, kb_id=found["id"], paths=paths, progress=sink)
        )
        _report(console, summary, json_out=json_out)
        return summary

    summary = await once()
    if watch:
        import watchfiles

        console.print(f"watching {', '.join(escape(str(p)) for p in paths)} for changes (Ctrl-C to stop)")
        async for _changes in watchfiles.awatch(*paths, debounce=500):
            summary = await once()
    return EXIT_PARTIAL if summary.failed else EXIT_OK


def register(app: typer.Typer) -> None:
    @app.command(help=_HELP)
    def index(
        ctx: typer.Context,
        paths: Annotated[list[Path], typer.Argument(help="Files or folders to index.")],
        kb: Annotated[str, typer.Option("--kb", help="Knowledge base name or id (created on first use).")] = DEFAULT_KB,
        watch: Annotated[bool, typer.Option("--watch", help="Keep watching and re-index changes.")] = False,
        json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
        url: Annotated[
            str | None, typer.Option("--url", help="Sync to the KB on this Memex server instead (default: MEMEX_URL).")
        ] = None,
        api_key: Annotated[
            str | None, typer.Option("--api-key", help="API key for --url (default: MEMEX_API_KEY).")
        ] = None,
    ) -> None:
        settings = settings_from(ctx)
        console = Console(stderr=True)
        for path in paths:
            if not path.expanduser().exists():
                console.print(f"[red]error:[/red] path does not exist: {escape(str(path))}", highlight=False)
                raise typer.Exit(EXIT_FATAL)
        server = url or settings.url
        if server:
            key = api_key or (settings.api_key.get_secret_value() if settings.api_key else None)

            async def go_remote() -> int:
                async with RemoteClient(server, key) as client:
                    return await _index_remote(client, kb, paths, watch=watch, json_out=json_out, console=console)

            raise typer.Exit(run_async(go_remote))

        async def go() -> int:
            runtime = await open_runtime(settings)
            try:
                found = await resolve_kb(runtime, kb, create=True)
                assert found is not None
                summary = await _index_once(runtime, found.id, paths, json_out=json_out, console=console)
                if watch:
                    await _watch(runtime, found.id, paths, json_out=json_out, console=console)
                return EXIT_PARTIAL if summary.failed else EXIT_OK
            finally:
                await runtime.close()

        raise typer.Exit(run_async(go))


async def _watch(runtime: Runtime, kb_id: object, paths: list[Path], *, json_out: bool, console: Console) -> None:
    import watchfiles

    console.print(f"watching {', '.join(escape(str(p)) for p in paths)} for changes (Ctrl-C to stop)")
    async for _changes in watchfiles.awatch(*paths, debounce=500):
        await _index_once(runtime, kb_id, paths, json_out=json_out, console=console)
