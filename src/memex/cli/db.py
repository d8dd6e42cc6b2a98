"""`memex db`: database upkeep (`maintain`)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from memex.cli.main import run_async, settings_from
from memex.maintenance import service
from memex.maintenance.models import MaintenanceReport
from memex.runtime import open_runtime


def render(report: MaintenanceReport, console: Console) -> None:
    console.print(
        f"ANALYZE: {len(report.analyzed)} tables in {report.analyze_seconds:.1f} s ({', '.join(report.analyzed)})",
        highlight=False,
    )
    for name in report.dropped_invalid:
        console.print(f"dropped {escape(name)}, left invalid by an interrupted rebuild", highlight=False)
    for action in report.indexes:
        if action.reindexed:
            after = (action.bytes_after or 0) / 2**20
            console.print(
                f"REINDEX CONCURRENTLY {escape(action.index.name)}: {escape(action.reason)}; now {after:,.1f} MiB "
                f"({action.seconds or 0:.1f} s)",
                highlight=False,
            )
        else:
            console.print(f"{escape(action.index.name)} left as it is: {escape(action.reason)}", highlight=False)


def register(app: typer.Typer) -> None:
    db = typer.Typer(help="Database upkeep.", no_args_is_help=True)
    app.add_typer(db, name="db")

    @db.command()
    def maintain(
        ctx: typer.Context,
        json_out: Annotated[bool, typer.Option("--json", help="Print what was done as one JSON object.")] = False,
    ) -> None:
        """ANALYZE Memex's tables, and REINDEX CONCURRENTLY the HNSW index when it has grown far past its rows
        (after many deletions). Safe while Memex runs; the worker also runs it on MEMEX_MAINTENANCE_SCHEDULE."""
        settings = settings_from(ctx)

        async def go() -> MaintenanceReport:
            runtime = await open_runtime(settings, check_model=False)
            try:
                return await service.maintain(runtime.engine)
            finally:
                await runtime.close()

        report = run_async(go)
        if json_out:
            typer.echo(json.dumps(report.as_dict()))
        else:
            render(report, Console())
