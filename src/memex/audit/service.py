"""Recording audit entries in the transaction of the change they describe, listing them, and retention.

`record` is called by the services inside the same transaction as the change, so a change that rolls back leaves
no entry. Failures that leave nothing else behind (a wrong password) are recorded in a transaction of their own.
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from memex import origin
from memex.audit import store
from memex.audit.models import Action, AuditPage, AuditQuery, Outcome
from memex.errors import InvalidInput
from memex.kbs.access import Actor

log = structlog.get_logger("memex.audit")

MAX_LIMIT = 1000


async def record(
    conn: AsyncConnection,
    *,
    action: Action,
    actor: Actor | None,
    target_type: str | None = None,
    target_id: uuid.UUID | str | None = None,
    outcome: Outcome = "success",
    detail: dict[str, Any] | None = None,
    ip: str | None = None,
) -> None:
    """Append an entry in `conn`'s transaction. The client address and request id come from the current origin.

    `actor` None (or the system actor) is Memex itself or the local CLI. Never put secrets or document text in `detail`.
    """
    here = origin.current()
    user_id = actor.user_id if actor is not None else None
    key_id = actor.api_key_id if actor is not None else None
    await store.insert(
        conn,
        action=action.value,
        outcome=outcome,
        actor_user_id=user_id,
        actor_key_id=key_id,
        ip=ip or here.ip,
        request_id=here.request_id,
        target_type=target_type,
        target_id=None if target_id is None else str(target_id),
        detail=detail or {},
    )
    (log.info if outcome == "success" else log.warning)(
        action.value,
        outcome=outcome,
        user=str(user_id) if user_id else None,
        key_id=str(key_id) if key_id else None,
        target_type=target_type,
        target_id=None if target_id is None else str(target_id),
        ip=ip or here.ip,
    )


async def list_entries(conn: AsyncConnection, query: AuditQuery) -> AuditPage:
    """One page of entries, newest first, and how many match in all. Admins only (checked by the caller's route)."""
    if not 1 <= query.limit <= MAX_LIMIT or query.offset < 0:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}, and offset not negative")
    query = dataclasses.replace(query, since=_aware(query.since), until=_aware(query.until))
    if query.since is not None and query.until is not None and query.since >= query.until:
        raise InvalidInput("since must be earlier than until")
    return AuditPage(entries=await store.entries(conn, query), total=await store.count(conn, query))


def _aware(moment: datetime | None) -> datetime | None:
    """A time without a zone is taken as UTC."""
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


async def apply_retention(conn: AsyncConnection, *, days: int, now: datetime | None = None) -> int:
    """Delete entries older than `days` (MEMEX_AUDIT_RETENTION_DAYS; none when it is 0), recording that it did."""
    if days <= 0:
        return 0
    cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
    deleted = await store.delete_before(conn, cutoff)
    if deleted:
        await record(
            conn,
            action=Action.audit_pruned,
            actor=None,
            detail={"deleted": deleted, "before": cutoff.isoformat(), "retention_days": days},
        )
    return deleted
