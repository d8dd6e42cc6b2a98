"""`memex reembed`."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from memex.cli.main import run_async, settings_from
from memex.ingest.reembed import reembed as reembed_all
from memex.runtime import open_runtime


def register(app: typer.Typer) -> None:
    @app.command()
    def reembed(ctx: typer.Context) -> None:
        """Rebuild every embedding with the configured model (after changing MEMEX_EMBEDDING_MODEL)."""
        settings = settings_from(ctx)
        console = Console(stderr=True)

        async def go() -> int:
            runtime = await open_runtime(settings, check_model=False)
            try:
                with Progress(
                    TextColumn("re-embedding"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TimeRemainingColumn(),
                    console=console,
                ) as progress:
                    task = progress.add_task("chunks", total=None)
                    return await reembed_all(
                        runtime, on_progress=lambda done, total: progress.update(task, completed=done, total=total)
                    )
            finally:
                await runtime.close()

        count = run_async(go)
        console.print(f"re-embedded {count} chunks with {settings.embedding_model}")
