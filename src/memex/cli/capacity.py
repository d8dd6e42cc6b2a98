"""`memex capacity`: what a corpus and a load need, from constants measured on this installation."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from memex.capacity import constants
from memex.capacity.plan import estimate, size
from memex.cli.main import EXIT_FATAL, settings_from
from memex.errors import MemexError

_HELP = """Estimate disk, memory, workers and API replicas for a corpus and a query load.

The arithmetic uses constants measured on this installation by `python benchmarks/capacity.py` (stored in
MEMEX_DATA_DIR/capacity.json), or the shipped defaults, which say where they were measured. Every figure is shown
with the arithmetic behind it.
"""


def register(app: typer.Typer) -> None:
    @app.command(help=_HELP)
    def capacity(
        ctx: typer.Context,
        documents: Annotated[int, typer.Option("--documents", min=0, help="Number of documents.")],
        avg_kb: Annotated[float, typer.Option("--avg-kb", min=0.001, help="Average KB of text a document.")],
        users: Annotated[
            int | None, typer.Option("--users", min=1, help="Users; without --qps, each sends 1 query a minute.")
        ] = None,
        qps: Annotated[
            float | None, typer.Option("--qps", min=0.0, help="Searches and questions a second at peak.")
        ] = None,
        ingest_hours: Annotated[
            float, typer.Option("--ingest-hours", min=0.01, help="Hours in which the whole corpus should be indexed.")
        ] = 24.0,
        as_json: Annotated[bool, typer.Option("--json", help="Print the estimate as JSON.")] = False,
    ) -> None:
        settings = settings_from(ctx)
        try:
            measured = constants.load(settings.data_dir)
            plan = estimate(
                measured, documents=documents, avg_kb=avg_kb, users=users, qps=qps, ingest_hours=ingest_hours
            )
        except MemexError as exc:
            Console(stderr=True).print(f"[red]error:[/red] {escape(exc.message)}", highlight=False, soft_wrap=True)
            raise typer.Exit(EXIT_FATAL) from exc
        if as_json:
            typer.echo(json.dumps(plan.as_dict(measured)))
            return
        table = Table(title=f"memex capacity: {documents:,} documents of {avg_kb:g} KB", show_lines=False)
        table.add_column("need")
        table.add_column("value", justify="right")
        table.add_column("arithmetic")
        for line in plan.lines:
            shown = size(line.value) if line.unit == "bytes" else f"{line.value:,.2f}".rstrip("0").rstrip(".")
            table.add_row(line.name.replace("_bytes", "").replace("_", " "), shown, escape(line.arithmetic))
        console = Console()
        console.print(table)
        console.print(
            f"Constants: {escape(measured.source)}, measured on {escape(measured.measured_on)} "
            f"({measured.measured_at}, {measured.chunk_tokens} tokens a chunk).",
            highlight=False,
            soft_wrap=True,
        )
