"""`memex users`: manage accounts directly in the database, as the system."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import typer
from sqlalchemy.ext.asyncio import AsyncConnection

from memex.accounts import credentials, service
from memex.accounts.models import NewUser, User
from memex.cli.main import run_async, settings_from
from memex.kbs.access import Actor
from memex.runtime import open_runtime
from memex.settings import Settings


@asynccontextmanager
async def system_connection(settings: Settings) -> AsyncIterator[AsyncConnection]:
    """A transaction on the local (or MEMEX_DATABASE_URL) database; account commands need no embedding model."""
    runtime = await open_runtime(settings, check_model=False)
    try:
        async with runtime.engine.begin() as conn:
            yield conn
    finally:
        await runtime.close()


def register(app: typer.Typer) -> None:
    users = typer.Typer(help="Manage user accounts.", no_args_is_help=True)
    app.add_typer(users, name="users")

    @users.command("create")
    def create(
        ctx: typer.Context,
        email: Annotated[str, typer.Option("--email", help="The user's email, used to log in.")],
        password: Annotated[
            str | None, typer.Option("--password", help="Their password; generated and printed if omitted.")
        ] = None,
        admin: Annotated[bool, typer.Option("--admin", help="Make the user an administrator.")] = False,
    ) -> None:
        """Create a user (with a personal knowledge base)."""
        settings = settings_from(ctx)

        async def go() -> NewUser:
            async with system_connection(settings) as conn:
                return await service.create_user(conn, email=email, password=password, is_admin=admin)

        new = run_async(go)
        typer.echo(f"created {'admin' if new.user.is_admin else 'user'} {new.user.email} ({new.user.id})")
        if new.password is not None:
            typer.echo(f"password (shown only now): {new.password}")

    @users.command("list")
    def list_users(ctx: typer.Context) -> None:
        """List users."""
        settings = settings_from(ctx)

        async def go() -> list[credentials.UserStatus]:
            async with system_connection(settings) as conn:
                return await credentials.list_users(conn)

        for status in run_async(go):
            user = status.user
            locked = f"locked until {status.locked_until.astimezone():%Y-%m-%d %H:%M}" if status.locked_until else ""
            marks = (("admin", user.is_admin), ("disabled", not user.is_active), (locked, bool(locked)))
            flags = ", ".join(f for f, on in marks if on)
            last = user.last_login_at.strftime("%Y-%m-%d %H:%M") if user.last_login_at else "never"
            typer.echo(f"{user.id}  {user.email}{f'  [{flags}]' if flags else ''}  last login: {last}")

    @users.command("disable")
    def disable(
        ctx: typer.Context, email: Annotated[str, typer.Argument(help="Email of the user to disable.")]
    ) -> None:
        """Disable a user: they cannot log in, and their sessions and API keys stop working."""
        settings = settings_from(ctx)

        async def go() -> User:
            async with system_connection(settings) as conn:
                return await service.disable_user(conn, Actor.system(), email)

        user = run_async(go)
        typer.echo(f"disabled {user.email}")

    @users.command("reset-password")
    def reset_password(
        ctx: typer.Context,
        email: Annotated[str, typer.Argument(help="Email of the user whose password to reset.")],
        password: Annotated[
            str | None, typer.Option("--password", help="The new password; generated and printed if omitted.")
        ] = None,
    ) -> None:
        """Set a user's password (generated and printed once without --password) and log them out everywhere."""
        settings = settings_from(ctx)

        async def go() -> tuple[User, str | None]:
            async with system_connection(settings) as conn:
                user = await service.find_user(conn, email)
                return await credentials.reset_password(conn, Actor.system(), user.id, password=password)

        user, generated = run_async(go)
        typer.echo(f"reset the password of {user.email}; their sessions were ended")
        if generated is not None:
            typer.echo(f"password (shown only now): {generated}")
