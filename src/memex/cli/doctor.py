"""`memex doctor`: a preflight and security audit of this installation."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from memex.cli.main import EXIT_FATAL, run_async, settings_from
from memex.doctor import context, runner
from memex.doctor.models import Report, Severity

_STYLES = {
    Severity.critical: "bold white on red",
    Severity.high: "bold red",
    Severity.medium: "yellow",
    Severity.low: "cyan",
    Severity.info: "dim",
}


def render(report: Report, console: Console) -> None:
    """The findings as tables, one per severity (worst first), then the manual checklist and a summary."""
    for severity in Severity:
        found = [f for f in report.findings if f.severity is severity]
        if not found:
            continue
        table = Table(
            title=f"{severity.value.upper()} ({len(found)})",
            title_style=_STYLES[severity],
            title_justify="left",
            show_lines=True,
            expand=True,
        )
        table.add_column("check", style="bold", no_wrap=True)
        table.add_column("found", ratio=3, overflow="fold")
        if severity is not Severity.info:
            table.add_column("fix", ratio=3, overflow="fold")
        for f in found:
            row = [escape(f.check), escape(f.found)]
            table.add_row(*(row if severity is Severity.info else [*row, escape(f.fix)]))
        console.print(table)
    table = Table(title=f"MANUAL ({len(report.manual)}): a person must confirm", title_justify="left", expand=True)
    table.add_column("check", style="bold", no_wrap=True)
    table.add_column("item", ratio=3)
    table.add_column("how", ratio=2)
    for item in report.manual:
        table.add_row(escape(item.check), escape(item.item), escape(item.how))
    console.print(table)
    summary = report.summary()
    counts = ", ".join(f"{summary[s.value]} {s.value}" for s in Severity)
    verdict = "[red]not ready[/red]" if report.blocking else "[green]no high or critical findings[/green]"
    console.print(f"{counts}: {verdict}", highlight=False)


def register(app: typer.Typer) -> None:
    @app.command()
    def doctor(
        ctx: typer.Context,
        json_out: Annotated[
            bool, typer.Option("--json", help='Print {"findings": [...], "manual": [...], "summary": {...}}.')
        ] = False,
        strict: Annotated[bool, typer.Option("--strict", help="Exit 1 when any finding is high or critical.")] = False,
    ) -> None:
        """Check this installation (security, database, storage, backups, jobs, chat model) and say how to fix
        what is wrong. Reads only; it changes nothing."""
        settings = settings_from(ctx)

        async def go() -> Report:
            async with context.opened(settings) as found:
                return await runner.run(found)

        report = run_async(go)
        if json_out:
            typer.echo(json.dumps(report.as_dict(), default=str))
        else:
            render(report, Console())
        if strict and report.blocking:
            raise typer.Exit(EXIT_FATAL)
