"""Logging in and out: password checks with lockout, and login sessions stored by the hash of their token."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from memex.accounts import passwords, store, tokens
from memex.accounts.models import Login, SessionRecord
from memex.accounts.service import actor_for
from memex.errors import AuthenticationRequired, PermissionDenied, RateLimited
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
    # Failures are committed on their own, so the count survives the error that follows.
    async with runtime.engine.begin() as conn:
        found = await store.credentials(conn, email.strip())
    if found is None:
        await passwords.verify_async(None, password)  # the same time as a real check: no probing for emails
        raise AuthenticationRequired(BAD_CREDENTIALS)
    now = datetime.now(UTC)
    if found.locked_until is not None and found.locked_until > now:
        raise _locked(found.locked_until)
    if not await passwords.verify_async(found.password_hash, password):
        async with runtime.engine.begin() as conn:
            locked_until = await store.record_failed_login(
                conn,
                user_id=found.user.id,
                max_attempts=settings.login_max_attempts,
                lockout_minutes=settings.login_lockout_minutes,
            )
        if locked_until is not None:
            raise _locked(locked_until)
        raise AuthenticationRequired(BAD_CREDENTIALS)
    if not found.user.is_active:
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
    return Login(user=found.user, token=token, csrf_token=csrf, expires_at=expires_at)


async def logout(conn: AsyncConnection, token: str) -> None:
    """End a session server-side: its cookie stops working at once, wherever it was copied to."""
    await store.revoke_session(conn, tokens.digest(token))


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
