"""All SQL about the audit log. Rows are only ever inserted; the database refuses updates and deletes (migration
0004), except a retention delete of rows older than the cutoff its transaction declares."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from memex.audit.models import AuditEntry, AuditQuery

COLUMNS = (
    "a.id, a.at, a.action, a.outcome, a.actor_user_id, a.actor_email, a.actor_key_id, a.ip, a.request_id, "
    "a.target_type, a.target_id, a.detail"
)
# The transaction-local setting the append-only trigger reads: rows older than it may be deleted.
DELETE_BEFORE_SETTING = "memex.audit_delete_before"


async def insert(
    conn: AsyncConnection,
    *,
    action: str,
    outcome: str,
    actor_user_id: uuid.UUID | None,
    actor_key_id: uuid.UUID | None,
    ip: str | None,
    request_id: str | None,
    target_type: str | None,
    target_id: str | None,
    detail: dict[str, Any],
) -> None:
    """Append one entry; the actor's email is copied in, so the entry still reads right if the user changes."""
    await conn.execute(
        sa.text(
            "INSERT INTO audit_log (action, outcome, actor_user_id, actor_email, actor_key_id, ip, request_id, "
            "target_type, target_id, detail) VALUES (:action, :outcome, CAST(:actor AS uuid), "
            "(SELECT email FROM users WHERE id = CAST(:actor AS uuid)), :key, :ip, :request_id, "
            ":target_type, :target_id, CAST(:detail AS jsonb))"
        ),
        {
            "action": action,
            "outcome": outcome,
            "actor": actor_user_id,
            "key": actor_key_id,
            "ip": ip,
            "request_id": request_id,
            "target_type": target_type,
            "target_id": target_id,
            "detail": json.dumps(detail, default=str),
        },
    )


def _where(query: AuditQuery) -> tuple[str, dict[str, object]]:
    conditions: list[str] = []
    params: dict[str, object] = {}
    if query.action is not None:
        conditions.append("a.action = :action")
        params["action"] = query.action
    if query.user_id is not None:
        # The user acted, or was acted on (their account, or a share given to or taken from them).
        conditions.append(
            "(a.actor_user_id = :user_id OR (a.target_type = 'user' AND a.target_id = :user_text) "
            "OR a.detail ->> 'user_id' = :user_text)"
        )
        params |= {"user_id": query.user_id, "user_text": str(query.user_id)}
    if query.since is not None:
        conditions.append("a.at >= :since")
        params["since"] = query.since
    if query.until is not None:
        conditions.append("a.at < :until")
        params["until"] = query.until
    return (" AND ".join(conditions) or "TRUE"), params


async def entries(conn: AsyncConnection, query: AuditQuery) -> list[AuditEntry]:
    """Entries matching the query, newest first, one page."""
    where, params = _where(query)
    rows = await conn.execute(
        sa.text(
            f"SELECT {COLUMNS} FROM audit_log a WHERE {where} ORDER BY a.at DESC, a.id DESC LIMIT :limit OFFSET :offset"
        ),
        params | {"limit": query.limit, "offset": query.offset},
    )
    return [AuditEntry.from_row(r) for r in rows]


async def count(conn: AsyncConnection, query: AuditQuery) -> int:
    where, params = _where(query)
    return int((await conn.execute(sa.text(f"SELECT count(*) FROM audit_log a WHERE {where}"), params)).scalar_one())


async def delete_before(conn: AsyncConnection, cutoff: datetime) -> int:
    """Delete the entries older than `cutoff`: the trigger lets through only those, and only in this transaction."""
    await conn.execute(
        sa.text("SELECT set_config(:name, :cutoff, true)"),
        {"name": DELETE_BEFORE_SETTING, "cutoff": cutoff.isoformat()},
    )
    result = await conn.execute(sa.text("DELETE FROM audit_log WHERE at < :cutoff"), {"cutoff": cutoff})
    return int(result.rowcount)


# A lockout ends when its wait runs out, when the address it held back logs in (a success there clears the wait),
# or when an admin unlocks the account; lockouts are only looked for in the last day (the back-off's memory).
_LIVE_LOCKOUTS = (
    "FROM audit_log l WHERE l.action = 'lockout' AND l.target_type = 'user' "
    "AND l.at > now() - make_interval(secs => :remember) AND CAST(l.detail ->> 'until' AS timestamptz) > now() "
    "AND NOT EXISTS (SELECT 1 FROM audit_log c WHERE c.target_type = 'user' AND c.target_id = l.target_id "
    "AND c.id > l.id AND (c.action = 'user_unlocked' OR (c.action = 'login' AND c.ip IS NOT DISTINCT FROM l.ip)))"
)


async def locked_until(conn: AsyncConnection, *, remember_seconds: int) -> dict[str, datetime]:
    """Each user (by id, as text) whose failed logins hold some address back now, and until when the last wait runs."""
    rows = await conn.execute(
        sa.text(
            f"SELECT l.target_id, max(CAST(l.detail ->> 'until' AS timestamptz)) AS until {_LIVE_LOCKOUTS} "
            "GROUP BY l.target_id"
        ),
        {"remember": remember_seconds},
    )
    return {r.target_id: r.until for r in rows}


async def failed_login_addresses(
    conn: AsyncConnection, *, user_id: uuid.UUID, remember_seconds: int
) -> list[str | None]:
    """The client addresses (None: no address, the local machine) refused a login at this user recently."""
    rows = await conn.execute(
        sa.text(
            "SELECT DISTINCT ip FROM audit_log WHERE action IN ('login_failed', 'lockout') AND target_type = 'user' "
            "AND target_id = :user_id AND at > now() - make_interval(secs => :remember)"
        ),
        {"user_id": str(user_id), "remember": remember_seconds},
    )
    return [r.ip for r in rows]
