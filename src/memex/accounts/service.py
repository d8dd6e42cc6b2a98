"""User rules: creating accounts (each with a personal KB), admin changes, the first-start admin."""

from __future__ import annotations

import ipaddress
import uuid

from sqlalchemy.ext.asyncio import AsyncConnection

from memex.accounts import passwords, store
from memex.accounts.models import BootstrapResult, NewUser, User
from memex.audit import service as audit
from memex.audit.models import Action
from memex.db import store as db_store
from memex.errors import ConfigurationError, Conflict, InvalidInput, NotFound
from memex.kbs import service as kbs
from memex.kbs.access import SCOPES, Actor
from memex.runtime import Runtime
from memex.settings import Settings

DEFAULT_ADMIN_EMAIL = "admin@localhost"
MAX_EMAIL = 254
# Any constant works: it only keeps two processes starting at once from both creating the first admin.
_BOOTSTRAP_LOCK = 0x6D656D6578


def clean_email(email: str) -> str:
    """The email trimmed, if it has the shape local@domain (domains without a dot, like localhost, are fine)."""
    email = email.strip()
    local, at, domain = email.rpartition("@")
    if not at or not local or not domain or len(email) > MAX_EMAIL or any(c.isspace() or ord(c) < 32 for c in email):
        raise InvalidInput("enter a valid email address, like name@example.com")
    return email


def check_password(password: str) -> None:
    if len(password) < passwords.MIN_LENGTH:
        raise InvalidInput(f"a password needs at least {passwords.MIN_LENGTH} characters")
    if len(password) > passwords.MAX_LENGTH:
        raise InvalidInput(f"a password has at most {passwords.MAX_LENGTH} characters")


def actor_for(user: User) -> Actor:
    """The actor a user acts as through a login session: every scope their account allows."""
    scopes = frozenset(SCOPES) if user.is_admin else frozenset({"read", "write"})
    return Actor(user_id=user.id, is_admin=user.is_admin, scopes=scopes)


async def add_user(
    conn: AsyncConnection,
    *,
    email: str,
    password_hash: str | None,
    is_admin: bool = False,
    actor: Actor | None = None,
) -> User:
    """Insert a user with an already-hashed password, and their personal KB; `actor` None is Memex itself."""
    email = clean_email(email)
    user = await store.insert_user(conn, email=email, password_hash=password_hash, is_admin=is_admin)
    if user is None:
        raise Conflict(f"a user with the email {email} already exists")
    await kbs.create_personal_kb(conn, user.id)
    await audit.record(
        conn,
        action=Action.user_created,
        actor=actor,
        target_type="user",
        target_id=user.id,
        detail={"email": user.email, "is_admin": user.is_admin},
    )
    return user


async def create_user(
    conn: AsyncConnection,
    *,
    email: str,
    password: str | None = None,
    is_admin: bool = False,
    actor: Actor | None = None,
) -> NewUser:
    """A new user (and their personal KB); without a password one is generated and returned, to be shown once."""
    generated = password is None
    password = passwords.generate() if password is None else password
    check_password(password)
    clean_email(email)
    if await store.get_user_by_email(conn, email.strip()) is not None:
        raise Conflict(f"a user with the email {email.strip()} already exists")
    user = await add_user(
        conn, email=email, password_hash=await passwords.hash_async(password), is_admin=is_admin, actor=actor
    )
    return NewUser(user=user, password=password if generated else None)


async def list_users(conn: AsyncConnection) -> list[User]:
    return await store.list_users(conn)


async def get_user(conn: AsyncConnection, user_id: uuid.UUID) -> User:
    user = await store.get_user(conn, user_id)
    if user is None:
        raise NotFound("user not found")
    return user


async def find_user(conn: AsyncConnection, email: str) -> User:
    user = await store.get_user_by_email(conn, email.strip())
    if user is None:
        raise NotFound(f"no user with the email {email.strip()}")
    return user


async def update_user(
    conn: AsyncConnection,
    actor: Actor,
    user_id: uuid.UUID,
    *,
    is_active: bool | None = None,
    is_admin: bool | None = None,
) -> User:
    """Enable, disable, promote or demote a user; nobody may lock out the last active admin or themselves."""
    user = await store.get_user(conn, user_id)
    if user is None:
        raise NotFound("user not found")
    if user.id == actor.user_id and (is_active is False or is_admin is False):
        raise Conflict("you cannot disable or demote your own account")
    losing_admin = user.is_admin and user.is_active and (is_active is False or is_admin is False)
    if losing_admin and await store.count_active_admins(conn) <= 1:
        raise Conflict("this is the last active admin: make another admin first")
    updated = await store.update_flags(conn, user_id=user.id, is_active=is_active, is_admin=is_admin)
    assert updated is not None
    if is_active is False:
        await store.revoke_user_sessions(conn, user.id)
    changes = (
        (user.is_active, updated.is_active, Action.user_enabled, Action.user_disabled),
        (user.is_admin, updated.is_admin, Action.user_promoted, Action.user_demoted),
    )
    for before, after, turned_on, turned_off in changes:
        if before != after:
            await audit.record(
                conn,
                action=turned_on if after else turned_off,
                actor=actor,
                target_type="user",
                target_id=user.id,
                detail={"email": user.email},
            )
    return updated


async def disable_user(conn: AsyncConnection, actor: Actor, email: str) -> User:
    """Disable a user by email: they cannot log in, and their sessions and API keys stop working."""
    user = await find_user(conn, email)
    return await update_user(conn, actor, user.id, is_active=False)


async def ensure_admin(runtime: Runtime) -> BootstrapResult | None:
    """Create the first admin when there are no users yet, and say what to print once; None if users exist.

    The email is MEMEX_ADMIN_EMAIL (default admin@localhost) and the password MEMEX_ADMIN_PASSWORD; without
    one a random password is generated and returned in the result, never a fixed default. Safe when several
    processes start at once: only one creates the admin.
    """
    settings = runtime.settings
    async with runtime.engine.begin() as conn:
        await db_store.advisory_xact_lock(conn, _BOOTSTRAP_LOCK)
        if await store.count_users(conn) > 0:
            return None
        given = settings.admin_password.get_secret_value() if settings.admin_password else None
        new = await create_user(conn, email=settings.admin_email or DEFAULT_ADMIN_EMAIL, password=given, is_admin=True)
    return BootstrapResult(email=new.user.email, password=new.password)


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_auth_config(settings: Settings) -> None:
    """Refuse to serve on an address other machines can reach without authentication or with a weak
    MEMEX_ADMIN_PASSWORD."""
    if is_loopback(settings.host):
        return
    if not settings.auth:
        raise ConfigurationError(
            f"MEMEX_AUTH=false is only allowed when the server listens on a loopback address (127.0.0.1, ::1, "
            f"localhost), not {settings.host}: turn authentication back on, or listen on 127.0.0.1"
        )
    weak = passwords.weakness(settings.admin_password.get_secret_value()) if settings.admin_password else None
    if weak:
        raise ConfigurationError(
            f"MEMEX_ADMIN_PASSWORD is too weak for a server listening on {settings.host} ({weak}): a strong one has "
            f"at least {passwords.STRONG_LENGTH} characters, {passwords.STRONG_DISTINCT} of them different and some "
            "letters, and is not a common password or placeholder; generate one with `openssl rand -base64 18`, or unset "
            "MEMEX_ADMIN_PASSWORD and Memex creates the admin with a random password that it prints once"
        )


async def auth_disabled_actor(conn: AsyncConnection) -> Actor | None:
    """Who every request acts as when authentication is off: the first admin, if there is one."""
    admin = await store.first_admin(conn)
    return None if admin is None else actor_for(admin)
