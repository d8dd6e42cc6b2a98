"""`memex kb`: knowledge bases and sharing, directly in the database, as the system."""

from __future__ import annotations

import uuid
from typing import Annotated

import typer

from memex.accounts import service as accounts
from memex.cli.main import run_async, settings_from
from memex.cli.users import system_connection
from memex.errors import InvalidInput
from memex.kbs import service
from memex.kbs.access import Actor, Role
from memex.kbs.models import KbListing, KnowledgeBase, Member
from memex.safe_text import for_terminal


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Manage knowledge bases.", no_args_is_help=True)
    app.add_typer(group, name="kb")

    @group.command("create")
    def create(
        ctx: typer.Context,
        name: Annotated[str, typer.Argument(help="Name of the new knowledge base.")],
        owner: Annotated[str | None, typer.Option("--owner", help="Email of its owner; none makes a local KB.")] = None,
        description: Annotated[str, typer.Option("--description", help="What it holds.")] = "",
    ) -> None:
        """Create a knowledge base."""
        settings = settings_from(ctx)

        async def go() -> KnowledgeBase:
            async with system_connection(settings) as conn:
                owner_id = (await accounts.find_user(conn, owner)).id if owner else None
                return await service.create_kb(conn, Actor.system(), name=name, description=description, owner=owner_id)

        kb = run_async(go)
        typer.echo(for_terminal(f"created knowledge base {kb.name!r}: {kb.id}"))

    @group.command("list")
    def list_kbs(ctx: typer.Context) -> None:
        """List every knowledge base, with its owner and document count."""
        settings = settings_from(ctx)

        async def go() -> tuple[list[KbListing], dict[uuid.UUID, str]]:
            async with system_connection(settings) as conn:
                found = await service.list_kbs(conn, Actor.system())
                emails = {u.id: u.email for u in await accounts.list_users(conn)}
            return found, emails

        found, emails = run_async(go)
        for item in found:
            kb = item.kb
            owner = emails.get(kb.owner_id, str(kb.owner_id)) if kb.owner_id else "none (made by the CLI)"
            personal = "  [personal]" if kb.is_personal else ""
            shown = for_terminal(f"{kb.id}  {kb.name}  owner: {owner}  documents: {item.document_count}{personal}")
            typer.echo(shown)

    @group.command("share")
    def share(
        ctx: typer.Context,
        kb_id: Annotated[str, typer.Argument(metavar="ID", help="The knowledge base's id.")],
        user: Annotated[str, typer.Option("--user", help="Email of the user to share with.")],
        role: Annotated[str, typer.Option("--role", help="viewer or editor.")] = "viewer",
    ) -> None:
        """Add a user to a knowledge base as viewer or editor at once (a local admin action: no invitation)."""
        settings = settings_from(ctx)

        async def go() -> Member:
            if role not in ("viewer", "editor"):
                raise InvalidInput(
                    f"a knowledge base can be shared as viewer or editor, not {role!r}: pass --role viewer or --role editor"
                )
            try:
                parsed = uuid.UUID(kb_id)
            except ValueError as exc:
                raise InvalidInput("ID is the knowledge base's id, as `memex kb list` shows it") from exc
            async with system_connection(settings) as conn:
                return await service.add_member(conn, Actor.system(), parsed, email=user, role=Role[role])

        member = run_async(go)
        typer.echo(f"shared {kb_id} with {member.email} as {member.role} (added directly, without an invitation)")
