"""Administration: `/api/admin/*` (users, knowledge bases, usage, audit). Admins only (through a key, one with the admin scope)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from memex.accounts import credentials, service
from memex.api import auth
from memex.api.deps import AdminActor, ConnDep, RuntimeDep
from memex.api.schemas import (
    AdminKbOut,
    AdminUserOut,
    AuditEntryOut,
    AuditOut,
    DoctorOut,
    PasswordResetIn,
    PasswordResetOut,
    UsageOut,
    UsageRowOut,
    UserCreated,
    UserIn,
    UserOut,
    UserPatch,
    error_responses,
)
from memex.audit import service as audit
from memex.audit.models import Action, AuditQuery
from memex.chat import service as chat
from memex.doctor import context as doctor_context
from memex.doctor import runner as doctor_runner
from memex.kbs import service as kbs

router = APIRouter(
    prefix="/api/admin",
    tags=["admin"],
    dependencies=[Depends(auth.admin_actor)],
    responses=error_responses(400, 401, 403, 404, 409, 422),
)


@router.get("/users")
async def list_users(conn: ConnDep) -> list[AdminUserOut]:
    """Every user, with `locked_until` set while failed logins make some address wait before trying them again."""
    return [AdminUserOut.of_status(s) for s in await credentials.list_users(conn)]


@router.post("/users", status_code=201)
async def create_user(body: UserIn, actor: AdminActor, conn: ConnDep) -> UserCreated:
    """Create a user (with a personal KB); without a password one is generated and returned only here."""
    new = await service.create_user(conn, email=body.email, password=body.password, is_admin=body.is_admin, actor=actor)
    return UserCreated(user=UserOut.of(new.user), password=new.password)


@router.patch("/users/{id}")
async def update_user(
    user_id: Annotated[uuid.UUID, Path(alias="id")], body: UserPatch, actor: AdminActor, conn: ConnDep
) -> UserOut:
    """Disable or enable a user (their sessions and keys stop working), or change whether they are an admin."""
    return UserOut.of(await service.update_user(conn, actor, user_id, is_active=body.is_active, is_admin=body.is_admin))


UserId = Annotated[uuid.UUID, Path(alias="id")]


@router.post("/users/{id}/password")
async def reset_password(
    user_id: UserId, actor: AdminActor, conn: ConnDep, body: PasswordResetIn | None = None
) -> PasswordResetOut:
    """Set a user's password (without one, a generated password is returned only here); ends all their sessions."""
    user, generated = await credentials.reset_password(conn, actor, user_id, password=body.password if body else None)
    return PasswordResetOut(user=UserOut.of(user), password=generated)


@router.post("/users/{id}/unlock")
async def unlock_user(user_id: UserId, actor: AdminActor, conn: ConnDep, runtime: RuntimeDep) -> AdminUserOut:
    """Forget the failed logins at a user, so that no address has to wait before its next attempt."""
    unlocked = await credentials.unlock(conn, actor, user_id, backoff=runtime.rate_limits.login_backoff)
    return AdminUserOut.of_status(unlocked)


@router.get("/kbs")
async def list_kbs(actor: AdminActor, conn: ConnDep) -> list[AdminKbOut]:
    """Every knowledge base with its real owner, document and member counts; never its contents."""
    return [AdminKbOut.of(item) for item in await kbs.list_all_kbs(conn, actor)]


@router.get("/doctor")
async def doctor(runtime: RuntimeDep) -> DoctorOut:
    """The same findings as `memex doctor --json`, for this server's installation (it takes a few seconds)."""
    report = await doctor_runner.run(doctor_context.from_runtime(runtime))
    return DoctorOut.model_validate(report.as_dict())


@router.get("/usage")
async def usage(conn: ConnDep, days: Annotated[int, Query(ge=1, le=3660)] = 30) -> UsageOut:
    """Chat requests, tokens and estimated cost per day, user and model (prices from MEMEX_LLM_PRICES)."""
    rows = await chat.usage_report(conn, days=days)
    return UsageOut(days=days, rows=[UsageRowOut.model_validate(r) for r in rows], totals=chat.usage_totals(rows))


@router.get("/audit")
async def audit_log(
    conn: ConnDep,
    action: Action | None = None,
    user: Annotated[uuid.UUID | None, Query(description="Entries where this user acted or was acted on.")] = None,
    since: Annotated[datetime | None, Query(description="From this time on (ISO 8601; UTC without a zone).")] = None,
    until: Annotated[datetime | None, Query(description="Before this time (ISO 8601; UTC without a zone).")] = None,
    limit: Annotated[int, Query(ge=1, le=audit.MAX_LIMIT)] = 100,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> AuditOut:
    """The audit log, newest first: logins, keys, users, knowledge bases, documents, backups."""
    query = AuditQuery(action=action, user_id=user, since=since, until=until, limit=limit, offset=offset)
    page = await audit.list_entries(conn, query)
    return AuditOut(
        entries=[AuditEntryOut.model_validate(e) for e in page.entries], total=page.total, limit=limit, offset=offset
    )
