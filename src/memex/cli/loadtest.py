"""`memex loadtest`: the load scenarios against a running server, as a table or JSON."""

from __future__ import annotations

import functools
import json
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from memex.cli.main import EXIT_FATAL, run_async
from memex.loadtest.report import summary, table
from memex.loadtest.runner import run_scenario
from memex.loadtest.scenarios import SCENARIOS, scenario

_HELP = """Send one or more load scenarios to a running Memex at a constant arrival rate.

Scenarios: steady (10 searches/s), peak (ramps from 5 to 50 searches/s), ingest (60 uploads/min of 1-64 KB text
files into a knowledge base named memex-loadtest), mix (10 requests/s: short searches, long questions, streamed
chat). Requests are sent on schedule whether or not earlier ones were answered, and latency counts from the
scheduled time, so queueing shows. The server's own rate limits apply: raise MEMEX_RATE_LIMIT_SEARCH (and _CHAT,
_UPLOAD) on the server under test, or the report shows 429s. Exits 1 when more requests fail than --max-error-rate.
"""


def register(app: typer.Typer) -> None:
    @app.command(help=_HELP)
    def loadtest(
        url: Annotated[str, typer.Argument(help="The server's base URL, e.g. http://127.0.0.1:8420.")],
        api_key: Annotated[
            str, typer.Option("--api-key", envvar="MEMEX_API_KEY", help="API key (read; write for ingest).")
        ],
        scenarios: Annotated[
            list[str] | None,
            typer.Option("--scenario", "-s", help=f"One of {', '.join(SCENARIOS)} (repeatable; default steady)."),
        ] = None,
        duration: Annotated[
            float | None, typer.Option("--duration", min=0.1, help="Seconds per scenario (default 60; ramps scale).")
        ] = None,
        max_error_rate: Annotated[
            float, typer.Option("--max-error-rate", min=0.0, max=1.0, help="Largest error rate that still exits 0.")
        ] = 0.01,
        as_json: Annotated[bool, typer.Option("--json", help="Print the reports as one JSON object.")] = False,
    ) -> None:
        chosen = [scenario(name, duration=duration) for name in _checked(scenarios or ["steady"])]
        console = Console(stderr=True)
        reports = []
        for s in chosen:
            if not as_json:
                console.print(f"Running {s.name}: {s.description}, for {s.duration:g} s ...", highlight=False)
            reports.append(summary(run_async(functools.partial(run_scenario, url.rstrip("/"), api_key, s))))
        if as_json:
            typer.echo(json.dumps({"url": url, "scenarios": [r.as_dict() for r in reports]}))
        else:
            Console().print(table(reports))
        failing = [r for r in reports if r.error_rate > max_error_rate]
        for r in failing:
            kinds = ", ".join(f"{kind}: {n}" for kind, n in r.errors_by_kind.items())
            console.print(
                f"[red]error:[/red] {escape(r.scenario)}: {r.errors} of {r.requests} requests failed "
                f"({escape(kinds)}), more than --max-error-rate {max_error_rate:g}",
                highlight=False,
                soft_wrap=True,
            )
        if failing:
            raise typer.Exit(EXIT_FATAL)


def _checked(names: list[str]) -> list[str]:
    for name in names:
        if name not in SCENARIOS:
            Console(stderr=True).print(
                f"[red]error:[/red] no scenario named {escape(name)!r}: choose from {', '.join(SCENARIOS)}",
                highlight=False,
            )
            raise typer.Exit(EXIT_FATAL)
    return names
