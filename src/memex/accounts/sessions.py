"""Logging in and out: password checks with lockout, and login sessions stored by the hash of their token."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from memex.accounts import passwords, store, tokens
from memex.accounts.models import Login, SessionRecord, User
from memex.accounts.service import actor_for, clean_email
from memex.audit import service as audit
from memex.audit.models import Action
from memex.errors import AuthenticationRequired, InvalidInput, PermissionDenied, RateLimited
from memex.kbs.access import Actor
from memex.runtime import Runtime

BAD_CREDENTIALS = "invalid email or password"


def _locked(until: datetime) -> RateLimited:
    minutes = max(1, math.ceil((until - datetime.now(UTC)).total_seconds() / 60))
    unit = "minute" if minutes == 1 else "minutes"
    return RateLimited(f"account locked after too many failed logins: try again in {minutes} {unit}")


async def login(runtime: Runtime, *, email: str, password: str) -> Login:
    """Check a password and open a session; failures are counted, and too many lock the account for a while."""
    settings = runtime.settings
    if not settings.password_login:
        raise PermissionDenied(f"password login is turned off here: sign in with {settings.oidc_display_name}")
    # Failures are committed on their own, so the count survives the error that follows.
    async with runtime.engine.begin() as conn:
        found = await store.credentials(conn, email.strip())
    if found is None:
        await passwords.verify_async(None, password)  # the same time as a real check: no probing for emails
        await _failed(runtime, None, "unknown_email", email=email)
        raise AuthenticationRequired(BAD_CREDENTIALS)
    now = datetime.now(UTC)
    if found.locked_until is not None and found.locked_until > now:
        await _failed(runtime, found.user, "locked")
        raise _locked(found.locked_until)
    if not await passwords.verify_async(found.password_hash, password):
        async with runtime.engine.begin() as conn:
            locked_until = await store.record_failed_login(
                conn,
                user_id=found.user.id,
                max_attempts=settings.login_max_attempts,
                lockout_minutes=settings.login_lockout_minutes,
            )
            await _audit_failure(conn, found.user, "wrong_password")
            if locked_until is not None:
                await audit.record(
                    conn,
                    action=Action.lockout,
                    actor=None,
                    target_type="user",
                    target_id=found.user.id,
                    outcome="failure",
                    detail={"email": found.user.email, "until": locked_until.isoformat()},
                )
        runtime.metrics.login_failed("wrong_password", locked_now=locked_until is not None)
        if locked_until is not None:
            raise _locked(locked_until)
        raise AuthenticationRequired(BAD_CREDENTIALS)
    if not found.user.is_active:
        await _failed(runtime, found.user, "disabled")
        raise PermissionDenied("this account is disabled: ask an administrator")
    assert found.password_hash is not None
    new_hash = await passwords.hash_async(password) if passwords.needs_rehash(found.password_hash) else None
    token, csrf = tokens.session_token(), tokens.csrf_token()
    expires_at = now + timedelta(hours=settings.session_hours)
    async with runtime.engine.begin() as conn:
        locked_until = await store.record_login(conn, user_id=found.user.id, new_hash=new_hash)
        if locked_until is not None:
            raise _locked(locked_until)  # guesses sent in parallel locked the account while this one was checked
        await store.delete_stale_sessions(conn, user_id=found.user.id)
        await store.insert_session(
            conn, token_hash=tokens.digest(token), user_id=found.user.id, csrf_token=csrf, expires_at=expires_at
        )
        await audit.record(
            conn, action=Action.login, actor=actor_for(found.user), target_type="user", target_id=found.user.id
        )
    return Login(user=found.user, token=token, csrf_token=csrf, expires_at=expires_at)


async def open_session(conn: AsyncConnection, user: User, *, hours: int) -> Login:
    """A new session for a user authenticated some other way (single sign-on); only its hash is stored."""
    token, csrf = tokens.session_token(), tokens.csrf_token()
    expires_at = datetime.now(UTC) + timedelta(hours=hours)
    await store.delete_stale_sessions(conn, user_id=user.id)
    await store.insert_session(
        conn, token_hash=tokens.digest(token), user_id=user.id, csrf_token=csrf, expires_at=expires_at
    )
    return Login(user=user, token=token, csrf_token=csrf, expires_at=expires_at)


async def _audit_failure(conn: AsyncConnection, user: User | None, reason: str, *, email: str | None = None) -> None:
    detail = {"reason": reason, "email": user.email if user else _loggable_email(email)}
    await audit.record(
        conn,
        action=Action.login_failed,
        actor=None,
        target_type="user",
        target_id=user.id if user else None,
        outcome="failure",
        detail={k: v for k, v in detail.items() if v is not None},
    )


async def _failed(runtime: Runtime, user: User | None, reason: str, *, email: str | None = None) -> None:
    """Record a refused login in a transaction of its own: the error that follows rolls nothing else back."""
    runtime.metrics.login_failed(reason)
    async with runtime.engine.begin() as conn:
        await _audit_failure(conn, user, reason, email=email)


def _loggable_email(email: str | None) -> str | None:
    """The email someone tried, if it has the shape of one (never whatever was typed, which may be a password)."""
    try:
        return clean_email(email or "")
    except InvalidInput:
        return None


async def logout(conn: AsyncConnection, actor: Actor, token: str) -> None:
    """End a session server-side: its cookie stops working at once, wherever it was copied to."""
    await store.revoke_session(conn, tokens.digest(token))
    await audit.record(conn, action=Action.logout, actor=actor, target_type="user", target_id=actor.user_id)


async def session_actor(conn: AsyncConnection, token: str) -> tuple[Actor, SessionRecord]:
    """The actor behind a session cookie, or AuthenticationRequired saying why it no longer works."""
    record = await store.session_by_hash(conn, tokens.digest(token))
    if record is None:
        raise AuthenticationRequired("invalid session: log in again")
    if not record.user.is_active:
        raise AuthenticationRequired("this account is disabled: ask an administrator")
    if record.revoked_at is not None:
        raise AuthenticationRequired("session ended: log in again")
    if record.expires_at <= datetime.now(UTC):
        raise AuthenticationRequired("session expired: log in again")
    return actor_for(record.user), record
