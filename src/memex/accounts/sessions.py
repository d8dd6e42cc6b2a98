"""Logging in and out: password checks throttled per account and client address, and login sessions stored by
the hash of their token.

A wrong password, an unknown email and a disabled account get the same answer (401, BAD_CREDENTIALS) after the
same work (one argon2 verification), and all count as failures. Failures never lock an account: past
MEMEX_LOGIN_MAX_ATTEMPTS from one address, that address waits between attempts (`ratelimit.LoginBackoff`), so
a stranger guessing from elsewhere cannot keep the owner out. Every address also spends the per-address
`login` rate limit across all accounts (api/deps.py), which bounds password spraying.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from memex import origin
from memex.accounts import passwords, store, tokens
from memex.accounts.models import Login, SessionRecord, User
from memex.accounts.service import actor_for, clean_email
from memex.audit import service as audit
from memex.audit.models import Action
from memex.errors import AuthenticationRequired, InvalidInput, PermissionDenied, RateLimited
from memex.kbs.access import Actor
from memex.runtime import Runtime

BAD_CREDENTIALS = "invalid email or password"


def attempt_key(email: str, ip: str | None) -> str:
    """Whose attempts these are: the email as typed (known or not, so back-off says nothing about which exist)
    and the client's address (None: the local machine)."""
    return f"{email.strip().lower()}|{ip or 'local'}"


async def login(runtime: Runtime, *, email: str, password: str) -> Login:
    """Check a password and open a session; see the module docstring for how failures are answered."""
    settings = runtime.settings
    if not settings.password_login:
        raise PermissionDenied(f"password login is turned off here: sign in with {settings.oidc_display_name}")
    async with runtime.engine.begin() as conn:
        found = await store.credentials(conn, email.strip())
    user = found.user if found else None
    backoff = runtime.rate_limits.login_backoff
    who = attempt_key(email, origin.current().ip)
    try:
        attempt = await backoff.attempt(who)
    except RateLimited:
        await _failed(runtime, user, "locked", email=email)
        raise
    # Verified on every path, so that no answer comes sooner for an unknown or disabled account.
    valid = await passwords.verify_async(found.password_hash if found else None, password)
    if found is None or not valid or not found.user.is_active:
        reason = "unknown_email" if found is None else "disabled" if valid else "wrong_password"
        await _failed(runtime, user, reason, email=email, wait_seconds=backoff.wait_seconds(attempt))
        raise AuthenticationRequired(BAD_CREDENTIALS)
    assert found.password_hash is not None
    await backoff.succeeded(who)
    new_hash = await passwords.hash_async(password) if passwords.needs_rehash(found.password_hash) else None
    token, csrf = tokens.session_token(), tokens.csrf_token()
    expires_at = datetime.now(UTC) + timedelta(hours=settings.session_hours)
    async with runtime.engine.begin() as conn:
        await store.record_login(conn, user_id=found.user.id, new_hash=new_hash)
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


async def _failed(
    runtime: Runtime, user: User | None, reason: str, *, email: str | None = None, wait_seconds: int = 0
) -> None:
    """Record a refused login in a transaction of its own: the error that follows rolls nothing else back.
    `wait_seconds`: how long this failure makes the client's next attempt at the account wait (a `lockout`)."""
    runtime.metrics.login_failed(reason, locked_now=wait_seconds > 0)
    shown = user.email if user else _loggable_email(email)
    entries = [(Action.login_failed, {"reason": reason, "email": shown})]
    if wait_seconds:
        until = datetime.now(UTC) + timedelta(seconds=wait_seconds)
        entries.append((Action.lockout, {"email": shown, "until": until.isoformat()}))
    async with runtime.engine.begin() as conn:
        for action, detail in entries:
            await audit.record(
                conn,
                action=action,
                actor=None,
                target_type="user",
                target_id=user.id if user else None,
                outcome="failure",
                detail={k: v for k, v in detail.items() if v is not None},
            )


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
