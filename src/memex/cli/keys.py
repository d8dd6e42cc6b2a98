"""`memex keys`: API keys, created for a user directly in the database."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from memex.accounts import keys, service
from memex.accounts.models import ApiKey, NewApiKey
from memex.cli.main import run_async, settings_from
from memex.cli.users import system_connection
from memex.errors import InvalidInput
from memex.kbs.access import Actor


def _kb_ids(values: list[str]) -> list[uuid.UUID]:
    try:
        return [uuid.UUID(v) for v in values]
    except ValueError as exc:
        raise InvalidInput("--kb takes a knowledge base id: see `memex kb list`") from exc


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Manage API keys.", no_args_is_help=True)
    app.add_typer(group, name="keys")

    @group.command("create")
    def create(
        ctx: typer.Context,
        user: Annotated[str, typer.Option("--user", help="Email of the user the key acts as.")],
        scope: Annotated[
            str, typer.Option("--scope", help="Comma-separated scopes: read, write, admin.")
        ] = "read,write",
        kb: Annotated[list[str] | None, typer.Option("--kb", help="Limit the key to this KB id (repeatable).")] = None,
        expires: Annotated[int | None, typer.Option("--expires", min=1, help="Days until the key expires.")] = None,
        name: Annotated[str, typer.Option("--name", help="A name to tell the key apart.")] = "cli",
    ) -> None:
        """Create an API key; the key itself is printed alone on the last line, and only now."""
        settings = settings_from(ctx)
        scopes = [s.strip() for s in scope.split(",") if s.strip()]

        async def go() -> NewApiKey:
            async with system_connection(settings) as conn:
                owner = await service.find_user(conn, user)
                return await keys.create_key(
                    conn,
                    service.actor_for(owner),
                    name=name,
                    scopes=scopes,
                    kb_ids=_kb_ids(kb or []) or None,
                    expires_at=datetime.now(UTC) + timedelta(days=expires) if expires else None,
                )

        new = run_async(go)
        limits = f", knowledge bases {', '.join(map(str, new.key.kb_ids))}" if new.key.kb_ids else ""
        expiry = f", expires {new.key.expires_at:%Y-%m-%d %H:%M} UTC" if new.key.expires_at else ""
        typer.echo(f"created key {new.key.id} for {user}: scopes {','.join(new.key.scopes)}{limits}{expiry}")
        typer.echo(new.secret)

    @group.command("list")
    def list_keys(ctx: typer.Context) -> None:
        """List live API keys of every user (never their secrets)."""
        settings = settings_from(ctx)

        async def go() -> tuple[list[ApiKey], dict[uuid.UUID, str]]:
            async with system_connection(settings) as conn:
                found = await keys.list_keys(conn, Actor.system())
                emails = {u.id: u.email for u in await service.list_users(conn)}
            return found, emails

        found, emails = run_async(go)
        for key in found:
            expiry = f"{key.expires_at:%Y-%m-%d}" if key.expires_at else "never"
            used = f"{key.last_used_at:%Y-%m-%d %H:%M}" if key.last_used_at else "never"
            limits = f"  kbs: {','.join(map(str, key.kb_ids))}" if key.kb_ids else ""
            typer.echo(
                f"{key.id}  mx_{key.prefix}_…  {emails.get(key.user_id, key.user_id)}  {key.name}  "
                f"scopes: {','.join(key.scopes)}{limits}  expires: {expiry}  last used: {used}"
            )

    @group.command("revoke")
    def revoke(ctx: typer.Context, key_id: Annotated[str, typer.Argument(metavar="ID", help="The key's id.")]) -> None:
        """Revoke an API key: it stops working on the next request."""
        settings = settings_from(ctx)

        async def go() -> None:
            try:
                parsed = uuid.UUID(key_id)
            except ValueError as exc:
                raise InvalidInput("ID is the key's id, as `memex keys list` shows it") from exc
            async with system_connection(settings) as conn:
                await keys.revoke_key(conn, Actor.system(), parsed)

        run_async(go)
        typer.echo(f"revoked {key_id}")
