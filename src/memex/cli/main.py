"""`memex`: the entry point. Builds the settings once, and is the one place errors become exit codes.

Commands are loaded when they run: `memex --help` and a search through a running server must not pay for
importing the server, the database layer and the embedding runtime (see COMMANDS).
"""

from __future__ import annotations

import asyncio
import importlib
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import typer
import typer.core
import typer.main
from rich.console import Console
from rich.markup import escape

from memex.errors import MemexError

if TYPE_CHECKING:
    from memex.settings import Settings

T = TypeVar("T")

EXIT_OK = 0
EXIT_FATAL = 1
EXIT_PARTIAL = 2

# Every command: the module whose register(app) adds it, and the line `memex --help` shows for it (the first
# paragraph of its own help; tests/integration/test_cli_startup.py checks that the two agree).
COMMANDS: dict[str, tuple[str, str]] = {
    "index": ("memex.cli.index", "Index files or folders (recursively) into a knowledge base, incrementally."),
    "search": ("memex.cli.search", "Search indexed documents (hybrid vector + full-text by default)."),
    "chat": ("memex.cli.chat", "Ask questions about your documents; answers cite their sources by number, like \\[1]."),
    "usage": (
        "memex.cli.usage",
        "Chat usage: requests, tokens and estimated cost (from MEMEX_LLM_PRICES) per day, user and model.",
    ),
    "audit": (
        "memex.cli.audit",
        "The audit log: logins, API keys, users, knowledge bases, documents and backups, newest first.",
    ),
    "migrate": (
        "memex.cli.migrate",
        "Apply pending database migrations (every command also does this on start, under a lock).",
    ),
    "reembed": ("memex.cli.reembed", "Move every embedding to another model while search keeps working."),
    "serve": (
        "memex.cli.serve",
        "Start the server: the API, the web UI and (unless --no-worker) a job worker, in one process.",
    ),
    "worker": ("memex.cli.worker", "Run job workers (document ingestion) until Ctrl-C or SIGTERM."),
    "mcp": (
        "memex.cli.mcp",
        "Serve Memex to an MCP client over stdio: tools search, ask, get_document, list_knowledge_bases.",
    ),
    "loadtest": (
        "memex.cli.loadtest",
        "Send one or more load scenarios to a running Memex at a constant arrival rate.",
    ),
    "capacity": (
        "memex.cli.capacity",
        "Estimate disk, memory, workers and API replicas for a corpus and a query load.",
    ),
    "doctor": (
        "memex.cli.doctor",
        "Check this installation (security, database, storage, backups, jobs, chat model) and say how to fix\n"
        "what is wrong. Reads only; it changes nothing.",
    ),
    "users": ("memex.cli.users", "Manage user accounts."),
    "keys": ("memex.cli.keys", "Manage API keys."),
    "kb": ("memex.cli.kb", "Manage knowledge bases."),
    "backup": ("memex.cli.backup", "Backups: create, verify, restore, list and prune archives."),
    "db": ("memex.cli.db", "Database upkeep."),
}
_loaded: dict[str, typer.core.TyperCommand | typer.core.TyperGroup | Any] = {}


def load_command(name: str) -> Any:
    """The real command NAME (a click command or group), importing its module on first use."""
    if name not in _loaded:
        module = importlib.import_module(COMMANDS[name][0])
        holder = typer.Typer()
        module.register(holder)
        _loaded[name] = typer.main.get_group(holder).commands[name]
    return _loaded[name]


class _LazyGroup(typer.core.TyperGroup):
    """The top-level group: lists every command by its help line, and imports a command's module only to run it."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        for name, (_, summary) in COMMANDS.items():
            self.commands[name] = _loaded.get(name) or typer.core.TyperCommand(name=name, help=summary)

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and args[0] in COMMANDS:
            self.commands[args[0]] = load_command(args[0])
        return super().resolve_command(ctx, args)


app = typer.Typer(
    name="memex",
    cls=_LazyGroup,
    help="Memex: a self-hosted knowledge assistant. Index your documents, search them, chat with them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err_console = Console(stderr=True)


@app.callback()
def _root() -> None:
    # A callback makes Typer build a group even though no command is registered on `app` itself.
    pass


def settings_from(ctx: typer.Context) -> Settings:
    if ctx.obj is None:
        from memex.settings import Settings

        try:
            ctx.obj = Settings()
        except ValueError as exc:
            err_console.print(f"[red]error:[/red] {escape(configuration_problems(exc))}", highlight=False)
            raise typer.Exit(EXIT_FATAL) from exc
        # Until a command configures its own (serve, worker), logs go to stderr: stdout is the command's output.
        quiet_logging(ctx.obj)
    settings: Settings = ctx.obj
    return settings


def configuration_problems(exc: ValueError) -> str:
    """Each invalid setting by the environment variable that sets it, and why; not pydantic's report."""
    from pydantic import ValidationError

    from memex.settings import Settings

    if not isinstance(exc, ValidationError):
        return f"the configuration is not valid: {exc}"
    problems = []
    for error in exc.errors(include_url=False):
        field = Settings.model_fields.get(str(error["loc"][0])) if error["loc"] else None
        name = "MEMEX_" + "_".join(str(part) for part in error["loc"]).upper() if error["loc"] else "a setting"
        reason = str(error["msg"]).removeprefix("Value error, ")
        value = error.get("input")
        # A secret's value is never shown, nor a value the reason already quotes.
        shown = isinstance(value, str | int | float) and field is not None and "Secret" not in str(field.annotation)
        given = f" ({value!r})" if shown and repr(value) not in reason else ""
        problems.append(f"{name}{given} is not valid: {reason[:1].lower()}{reason[1:]}")
    return "; ".join(problems)


def quiet_logging(settings: Settings) -> None:
    """Logs to stderr, warnings only unless MEMEX_LOG_LEVEL says otherwise: stdout is the command's output."""
    from memex.logging import configure_logging

    level = settings.log_level if "log_level" in settings.model_fields_set else "WARNING"
    configure_logging(settings.model_copy(update={"log_level": level}))


def run_async(coro_fn: Callable[[], Awaitable[T]]) -> T:
    """Run a command's coroutine, turning Memex errors into a message and exit status 1."""
    try:
        return asyncio.run(coro_fn())  # type: ignore[arg-type]
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    except Exception as exc:
        report_failure(exc)


def report_failure(exc: Exception) -> NoReturn:
    """A Memex error or a database failure as a message and exit status 1; anything else (a bug) goes on up."""
    if isinstance(exc, MemexError):
        err_console.print(f"[red]error:[/red] {escape(exc.message)}", highlight=False)
        raise typer.Exit(EXIT_FATAL) from exc
    failures = _database_failures()
    if failures is not None and failures.database_error(exc) is not None:
        err_console.print(f"[red]error:[/red] {escape(database_unavailable(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_FATAL) from exc
    raise exc


def _database_failures() -> Any:
    # Only a command that loaded a database driver can raise its errors; importing them here just to ask would
    # slow down the commands that never touch the database (a search through a running server).
    if "psycopg" not in sys.modules and "sqlalchemy" not in sys.modules:
        return None
    from memex.db import failures

    return failures


def database_unavailable(exc: BaseException) -> str:
    """What a person reads when the database went away in the middle of a command."""
    from memex.db import failures

    return f"the database is unavailable ({failures.first_line(exc)}): check that it is running and try again"


def main() -> None:
    import warnings

    # pgserver asks platformdirs for a runtime dir, which warns when XDG_RUNTIME_DIR is unset (servers, CI).
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    app()


if __name__ == "__main__":
    main()
