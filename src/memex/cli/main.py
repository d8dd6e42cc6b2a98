"""`memex`: the entry point. Builds the settings once, and is the one place errors become exit codes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import NoReturn, TypeVar

import pydantic
import typer
from rich.console import Console
from rich.markup import escape

from memex.db import failures
from memex.errors import MemexError
from memex.settings import Settings

T = TypeVar("T")

EXIT_OK = 0
EXIT_FATAL = 1
EXIT_PARTIAL = 2

app = typer.Typer(
    name="memex",
    help="Memex: a self-hosted knowledge assistant. Index your documents, search them, chat with them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err_console = Console(stderr=True)


def settings_from(ctx: typer.Context) -> Settings:
    if ctx.obj is None:
        try:
            ctx.obj = Settings()
        except ValueError as exc:
            err_console.print(f"[red]error:[/red] invalid configuration: {escape(_configuration_problems(exc))}")
            raise typer.Exit(EXIT_FATAL) from exc
        # Until a command configures its own (serve, worker), logs go to stderr: stdout is the command's output.
        quiet_logging(ctx.obj)
    settings: Settings = ctx.obj
    return settings


def _configuration_problems(exc: ValueError) -> str:
    """Each invalid setting by its variable's name, with the validator's sentence (never the value given)."""
    if not isinstance(exc, pydantic.ValidationError):
        return str(exc)
    return "; ".join(
        f"MEMEX_{'_'.join(map(str, e['loc'])).upper()}: {e['msg'].removeprefix('Value error, ')}" for e in exc.errors()
    )


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
    if failures.database_error(exc) is not None:
        err_console.print(f"[red]error:[/red] {escape(database_unavailable(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_FATAL) from exc
    raise exc


def database_unavailable(exc: BaseException) -> str:
    """What a person reads when the database went away in the middle of a command."""
    return f"the database is unavailable ({failures.first_line(exc)}): check that it is running and try again"


def _register() -> None:
    from memex.cli import audit, chat, index, migrate, reembed, search, usage

    index.register(app)
    search.register(app)
    chat.register(app)
    usage.register(app)
    audit.register(app)
    migrate.register(app)
    reembed.register(app)
    from memex.cli import kb, keys, users

    users.register(app)
    keys.register(app)
    kb.register(app)
    from memex.cli import serve, worker

    serve.register(app)
    worker.register(app)
    from memex.cli import mcp

    mcp.register(app)
    from memex.cli import backup

    backup.register(app)
    from memex.cli import capacity, loadtest

    loadtest.register(app)
    capacity.register(app)
    from memex.cli import db, doctor

    doctor.register(app)
    db.register(app)


_register()


def main() -> None:
    import warnings

    # pgserver asks platformdirs for a runtime dir, which warns when XDG_RUNTIME_DIR is unset (servers, CI).
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    app()


if __name__ == "__main__":
    main()
