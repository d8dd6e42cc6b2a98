"""`memex migrate`."""

from __future__ import annotations

import typer

from memex.cli.main import run_async, settings_from
from memex.runtime import open_runtime


def register(app: typer.Typer) -> None:
    @app.command()
    def migrate(ctx: typer.Context) -> None:
        """Apply pending database migrations (every command also does this on start, under a lock)."""
        settings = settings_from(ctx)

        async def go() -> None:
            runtime = await open_runtime(settings, check_model=False)
            await runtime.close()

        run_async(go)
        typer.echo("database schema is up to date")
