"""Passwords after sign-up: a user changes their own, an admin resets one or unlocks an account held back by
failed logins.

Changing a password ends the user's other sessions (the one used to change it stays); a reset ends all of them,
since whoever held a session may be why the password was reset. API keys are separate credentials and keep
working: revoke them on the keys page. "Locked" means what `sessions` does after repeated failures: some client
address must wait before its next attempt at the account; unlocking clears that wait for every address.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from memex.accounts import passwords, store, tokens
from memex.accounts.models import User
from memex.accounts.service import check_password, get_user
from memex.accounts.sessions import attempt_key
from memex.audit import service as audit
from memex.audit import store as audit_store
from memex.audit.models import Action
from memex.errors import AuthenticationRequired, InvalidInput, PermissionDenied
from memex.kbs.access import Actor
from memex.ratelimit import LoginBackoff

WRONG_CURRENT = "your current password is not right: nothing was changed"


@dataclass(frozen=True, slots=True)
class UserStatus:
    """A user as the admin's list shows them: `locked_until` is set while failed logins hold an address back."""

    user: User
    locked_until: datetime | None


async def change_password(
    conn: AsyncConnection, actor: Actor, *, current: str, new: str, session_token: str | None
) -> int:
    """Change the actor's own password; ends their other sessions (all but `session_token`'s) and says how many."""
    actor.require_unrestricted("change the account's password")
    if actor.user_id is None:
        raise AuthenticationRequired("log in to change your password")
    check_password(new)
    if not await passwords.verify_async(await store.password_hash(conn, actor.user_id), current):
        raise InvalidInput(WRONG_CURRENT)
    if new == current:
        raise InvalidInput("the new password is the same as the current one: choose another")
    await store.set_password(conn, user_id=actor.user_id, password_hash=await passwords.hash_async(new))
    keep = tokens.digest(session_token) if session_token else None
    ended = await store.revoke_user_sessions(conn, actor.user_id, keep_hash=keep)
    await audit.record(
        conn,
        action=Action.password_changed,
        actor=actor,
        target_type="user",
        target_id=actor.user_id,
        detail={"sessions_ended": ended},
    )
    return ended


async def reset_password(
    conn: AsyncConnection, actor: Actor, user_id: uuid.UUID, *, password: str | None = None
) -> tuple[User, str | None]:
    """An admin sets a user's password (generated when None, and returned to be shown once); ends all their sessions."""
    if not actor.is_admin:
        raise PermissionDenied("only administrators can reset passwords")
    user = await get_user(conn, user_id)
    chosen = passwords.generate() if password is None else password
    check_password(chosen)
    await store.set_password(conn, user_id=user.id, password_hash=await passwords.hash_async(chosen))
    ended = await store.revoke_user_sessions(conn, user.id)
    await audit.record(
        conn,
        action=Action.password_reset,
        actor=actor,
        target_type="user",
        target_id=user.id,
        detail={"email": user.email, "generated": password is None, "sessions_ended": ended},
    )
    return user, chosen if password is None else None


async def list_users(conn: AsyncConnection) -> list[UserStatus]:
    """Every user, with whether failed logins hold them locked now (admins only, checked by the caller's route)."""
    locks = await audit_store.locked_until(conn, remember_seconds=LoginBackoff.REMEMBER_SECONDS)
    return [UserStatus(user=u, locked_until=locks.get(str(u.id))) for u in await store.list_users(conn)]


async def unlock(conn: AsyncConnection, actor: Actor, user_id: uuid.UUID, *, backoff: LoginBackoff) -> UserStatus:
    """Forget the failed logins at a user from every address, so that nobody has to wait before the next attempt."""
    if not actor.is_admin:
        raise PermissionDenied("only administrators can unlock accounts")
    user = await get_user(conn, user_id)
    addresses = await audit_store.failed_login_addresses(
        conn, user_id=user.id, remember_seconds=LoginBackoff.REMEMBER_SECONDS
    )
    for ip in addresses:
        await backoff.succeeded(attempt_key(user.email, ip))
    await audit.record(
        conn,
        action=Action.user_unlocked,
        actor=actor,
        target_type="user",
        target_id=user.id,
        detail={"email": user.email, "addresses": len(addresses)},
    )
    return UserStatus(user=user, locked_until=None)
