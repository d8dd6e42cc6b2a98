"""`memex backup`: create, verify, restore, list and prune backup archives."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from memex.cli.main import EXIT_FATAL, run_async, settings_from

_PRUNE_HELP = """Delete old archives from the backup folder.

The rule: an archive is kept if it was made less than --keep-days days ago, or if it is one of the
--keep-last newest (at least the newest one is always kept); every other archive is deleted. Ages come
from the time recorded in each archive. Files that are not Memex archives are never touched.
"""

_VERIFY_HELP = """Restore an archive into a scratch Postgres and check it against its manifest.

Checks every segment's checksum (and, for an encrypted archive, its authentication and the key), the
dump's sha256, each table's row count, every original file's sha256, the migration of an older schema,
and the sample searches recorded in the archive. Exit status 0 when every check passes, 1 otherwise.
"""

_RESTORE_HELP = """Restore an archive into the configured database, then migrate it to this Memex's schema.

The archive is checked whole before anything is changed, and the restore runs in one transaction. A
database that already holds data is refused unless --force, which replaces everything in it: stop every
Memex process using the database first.
"""

backup_app = typer.Typer(
    name="backup", help="Backups: create, verify, restore, list and prune archives.", no_args_is_help=True
)
console = Console(stderr=True)


class _Bar:
    """The backup services' Progress, drawn by rich on stderr."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._task: TaskID | None = None

    def start(self, description: str, total: int | None) -> None:
        if self._task is not None:
            self._progress.remove_task(self._task)
        self._task = self._progress.add_task(description, total=total)

    def advance(self, amount: int) -> None:
        if self._task is not None:
            self._progress.update(self._task, advance=amount)


@contextmanager
def _bar() -> Iterator[_Bar]:
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as progress:
        yield _Bar(progress)


def _folder(settings_dir: Path, given: Path | None) -> Path:
    return (given or settings_dir).expanduser()


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


@backup_app.command("create")
def create_command(
    ctx: typer.Context,
    out: Annotated[
        Path | None, typer.Option("--out", help="Folder to write the archive to (default: MEMEX_BACKUP_DIR).")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print a JSON summary on stdout.")] = False,
) -> None:
    """Back up the whole database (documents, original files, vectors, users, keys, chats, audit) to one archive."""
    from memex.backup import create
    from memex.runtime import resolve_database_url

    settings = settings_from(ctx)
    folder = _folder(create.backup_dir(settings), out)

    async def go() -> dict[str, object]:
        import asyncio

        url, _embedded = await asyncio.to_thread(resolve_database_url, settings)
        with _bar() as bar:
            created = await create.create(settings, url=url, out_dir=folder, progress=bar)
        await create.record_created(url, created)
        return created.as_dict()

    summary = run_async(go)
    if json_out:
        typer.echo(json.dumps(summary))
    else:
        console.print(
            f"wrote [bold]{escape(str(summary['path']))}[/bold] ({_size(int(summary['bytes']))}, {summary['rows']} rows, "  # type: ignore[call-overload]
            f"{'encrypted' if summary['encrypted'] else 'not encrypted'}) in {summary['seconds']} s",
            highlight=False,
        )


@backup_app.command("verify", help=_VERIFY_HELP)
def verify_command(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="The archive to verify.")],
    json_out: Annotated[bool, typer.Option("--json", help="Print the checks as JSON on stdout.")] = False,
) -> None:
    from memex.backup import verify

    settings = settings_from(ctx)

    async def go() -> dict[str, object]:
        with _bar() as bar:
            result = await verify.verify(settings, file.expanduser(), progress=bar)
        return result.as_dict()

    result = run_async(go)
    if json_out:
        typer.echo(json.dumps(result))
    else:
        for check in result["checks"]:  # type: ignore[attr-defined]
            mark = "[green]✓[/green]" if check["ok"] else "[red]✗[/red]"
            console.print(f"  {mark} {check['name']}: {escape(check['detail'])}", highlight=False)
        if result["ok"]:
            console.print(f"[green]passed[/green]: {escape(str(file))} restores and checks out", highlight=False)
        else:
            console.print(f"[red]failed[/red]: {escape(str(result['reason']))}", highlight=False)
    if not result["ok"]:
        raise typer.Exit(EXIT_FATAL)


@backup_app.command("restore", help=_RESTORE_HELP)
def restore_command(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="The archive to restore.")],
    force: Annotated[bool, typer.Option("--force", help="Replace a database that already holds data.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print a JSON summary on stdout.")] = False,
) -> None:
    from memex.backup import restore
    from memex.runtime import resolve_database_url

    settings = settings_from(ctx)

    async def go() -> dict[str, object]:
        import asyncio

        url, _embedded = await asyncio.to_thread(resolve_database_url, settings)
        with _bar() as bar:
            restored = await restore.restore(settings, file.expanduser(), url=url, force=force, progress=bar)
        return restored.as_dict()

    summary = run_async(go)
    if json_out:
        typer.echo(json.dumps(summary))
    else:
        migrated = f", migrated to {summary['migrated_to']}" if summary["migrated_to"] else ""
        console.print(
            f"restored {escape(str(file))}: {summary['rows']} rows, schema {summary['schema_revision']}{migrated}, "
            f"in {summary['seconds']} s",
            highlight=False,
        )
    for warning in summary["warnings"]:  # type: ignore[attr-defined]
        console.print(f"[yellow]warning:[/yellow] {escape(warning)}", highlight=False)


@backup_app.command("list")
def list_command(
    ctx: typer.Context,
    directory: Annotated[Path | None, typer.Option("--dir", help="Folder to list (default: MEMEX_BACKUP_DIR).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the archives as JSON on stdout.")] = False,
) -> None:
    """The archives in the backup folder, newest first: time, size, schema revision, and whether verified."""
    from memex.backup import create, retention

    settings = settings_from(ctx)
    archives = retention.list_archives(_folder(create.backup_dir(settings), directory))
    if json_out:
        typer.echo(json.dumps([a.as_dict() for a in archives]))
        return
    if not archives:
        console.print("no archives")
        return
    table = Table("created (UTC)", "size", "revision", "verified", "encrypted", "file", box=None)
    for a in archives:
        table.add_row(
            f"{a.created_at.astimezone(UTC):%Y-%m-%d %H:%M:%S}",
            _size(a.size),
            a.schema_revision or "-",
            f"{a.verified_at.astimezone(UTC):%Y-%m-%d %H:%M}" if a.verified_at else "no",
            "yes" if a.encrypted else "no",
            escape(a.path.name),
        )
    Console().print(table)


@backup_app.command("prune", help=_PRUNE_HELP)
def prune_command(
    ctx: typer.Context,
    keep_days: Annotated[int, typer.Option("--keep-days", help="Keep every archive made in this many days.", min=0)],
    keep_last: Annotated[
        int, typer.Option("--keep-last", help="Keep this many newest archives, however old.", min=1)
    ] = 1,
    directory: Annotated[
        Path | None, typer.Option("--dir", help="Folder to prune (default: MEMEX_BACKUP_DIR).")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print what was kept and deleted as JSON.")] = False,
) -> None:
    from memex.backup import create, retention
    from memex.errors import MemexError

    settings = settings_from(ctx)
    try:
        kept, deleted = retention.prune(
            _folder(create.backup_dir(settings), directory),
            keep_days=keep_days,
            keep_last=keep_last,
            now=datetime.now(UTC),
        )
    except MemexError as exc:
        console.print(f"[red]error:[/red] {escape(exc.message)}", highlight=False)
        raise typer.Exit(EXIT_FATAL) from exc
    if json_out:
        typer.echo(json.dumps({"kept": [str(a.path) for a in kept], "deleted": [str(a.path) for a in deleted]}))
        return
    for a in deleted:
        console.print(f"deleted {escape(a.path.name)}", highlight=False)
    console.print(f"{len(kept)} kept, {len(deleted)} deleted")


def register(app: typer.Typer) -> None:
    app.add_typer(backup_app)
