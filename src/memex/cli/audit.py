"""`memex audit`: the audit log, newest first, read straight from the database."""

from __future__ import annotations

import json
from datetime import UTC
from typing import Annotated

import typer

from memex.accounts import service as accounts
from memex.audit import service
from memex.audit.models import Action, AuditEntry, AuditPage, AuditQuery
from memex.cli.main import quiet_logging, run_async, settings_from
from memex.cli.users import system_connection


def entry_json(entry: AuditEntry) -> dict[str, object]:
    """An entry as GET /api/admin/audit shows it."""
    return {
        "id": entry.id,
        "at": entry.at.astimezone(UTC).isoformat(),
        "action": entry.action,
        "outcome": entry.outcome,
        "actor_user_id": str(entry.actor_user_id) if entry.actor_user_id else None,
        "actor_email": entry.actor_email,
        "actor_key_id": str(entry.actor_key_id) if entry.actor_key_id else None,
        "ip": entry.ip,
        "request_id": entry.request_id,
        "target_type": entry.target_type,
        "target_id": entry.target_id,
        "detail": entry.detail,
    }


def register(app: typer.Typer) -> None:
    @app.command()
    def audit(
        ctx: typer.Context,
        action: Annotated[Action | None, typer.Option("--action", help="Only this action.")] = None,
        user: Annotated[
            str | None,
            typer.Option("--user", help="Only entries where the user with this email acted or was acted on."),
        ] = None,
        limit: Annotated[int, typer.Option("--limit", min=1, max=service.MAX_LIMIT, help="Most entries shown.")] = 50,
        offset: Annotated[int, typer.Option("--offset", min=0, help="Skip this many of the newest entries.")] = 0,
        json_out: Annotated[
            bool, typer.Option("--json", help="Print the same JSON object as GET /api/admin/audit.")
        ] = False,
    ) -> None:
        """The audit log: logins, API keys, users, knowledge bases, documents and backups, newest first."""
        settings = settings_from(ctx)
        quiet_logging(settings)

        async def go() -> AuditPage:
            async with system_connection(settings) as conn:
                user_id = (await accounts.find_user(conn, user)).id if user else None
                query = AuditQuery(action=action, user_id=user_id, limit=limit, offset=offset)
                return await service.list_entries(conn, query)

        page = run_async(go)
        if json_out:
            entries = [entry_json(e) for e in page.entries]
            typer.echo(json.dumps({"entries": entries, "total": page.total, "limit": limit, "offset": offset}))
            return
        if not page.entries:
            typer.echo("No audit entries.")
            return
        for e in page.entries:
            # No user: Memex itself or the local CLI, or someone not logged in (a failed login, from an address).
            actor = e.actor_email or (
                str(e.actor_user_id) if e.actor_user_id else "(local)" if not e.ip else "(anonymous)"
            )
            if e.actor_key_id:
                actor += f" (key {e.actor_key_id})"
            target = f"  {e.target_type} {e.target_id or ''}".rstrip() if e.target_type else ""
            typer.echo(
                f"{e.at.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}  {e.action}  {e.outcome}  {actor}  from {e.ip or 'local'}{target}"
            )
        if page.total > offset + len(page.entries):
            typer.echo(f"({page.total - offset - len(page.entries)} older entries: see --offset and --limit)")
