"""`memex usage`: chat requests, tokens and estimated cost per day, user and model."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from memex.chat import service
from memex.chat.models import UsageRow
from memex.cli.main import run_async, settings_from
from memex.runtime import open_runtime


def register(app: typer.Typer) -> None:
    @app.command()
    def usage(
        ctx: typer.Context,
        days: Annotated[int, typer.Option("--days", min=1, max=3660, help="How many days back, today included.")] = 30,
        json_out: Annotated[
            bool, typer.Option("--json", help="Print the same JSON object as GET /api/admin/usage.")
        ] = False,
    ) -> None:
        """Chat usage: requests, tokens and estimated cost (from MEMEX_LLM_PRICES) per day, user and model."""
        settings = settings_from(ctx)

        async def go() -> list[UsageRow]:
            runtime = await open_runtime(settings)
            try:
                async with runtime.engine.begin() as conn:
                    return await service.usage_report(conn, days=days)
            finally:
                await runtime.close()

        rows = run_async(go)
        totals = service.usage_totals(rows)
        if json_out:
            body = {
                "days": days,
                "rows": [asdict(r) | {"user_id": str(r.user_id) if r.user_id else None} for r in rows],
            }
            typer.echo(json.dumps(body | {"totals": totals}))
            return
        console = Console()
        if not rows:
            console.print(f"No chat usage in the last {days} days.")
            return
        table = Table(title=f"Chat usage, last {days} days")
        for column in ("day", "user", "model", "requests", "prompt tokens", "completion tokens", "cost"):
            table.add_column(column, justify="right" if column not in ("day", "user", "model") else "left")
        for r in rows:
            table.add_row(
                r.day,
                r.email or "(local CLI)",
                f"{r.provider}/{r.model}",
                str(r.requests),
                f"{r.prompt_tokens:,}",
                f"{r.completion_tokens:,}",
                f"{r.cost:.4f}",
            )
        table.add_row(
            "total",
            "",
            "",
            str(totals["requests"]),
            f"{totals['prompt_tokens']:,}",
            f"{totals['completion_tokens']:,}",
            f"{totals['cost']:.4f}",
            style="bold",
        )
        console.print(table)
