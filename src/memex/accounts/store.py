"""All SQL about users, login sessions, single sign-on and API keys."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from memex.accounts.models import ApiKey, Credentials, PendingLogin, SessionRecord, User

USER_COLUMNS = "u.id, u.email, u.is_admin, u.is_active, u.created_at, u.last_login_at"
KEY_COLUMNS = (
    "k.id, k.user_id, k.name, k.prefix, k.scopes, k.kb_ids, k.expires_at, k.last_used_at, k.revoked_at, k.created_at"
)


# --- users -----------------------------------------------------------------------------------------------


async def insert_user(conn: AsyncConnection, *, email: str, password_hash: str | None, is_admin: bool) -> User | None:
    """A new user, or None when the email (case-insensitively) is taken."""
    row = (
        await conn.execute(
            sa.text(
                "INSERT INTO users AS u (email, password_hash, is_admin) VALUES (:email, :hash, :is_admin) "
                f"ON CONFLICT ((lower(email))) DO NOTHING RETURNING {USER_COLUMNS}"
            ),
            {"email": email, "hash": password_hash, "is_admin": is_admin},
        )
    ).first()
    return User.from_row(row) if row else None


async def get_user(conn: AsyncConnection, user_id: uuid.UUID) -> User | None:
    row = (await conn.execute(sa.text(f"SELECT {USER_COLUMNS} FROM users u WHERE u.id = :id"), {"id": user_id})).first()
    return User.from_row(row) if row else None


async def get_user_by_email(conn: AsyncConnection, email: str) -> User | None:
    row = (
        await conn.execute(
            sa.text(f"SELECT {USER_COLUMNS} FROM users u WHERE lower(u.email) = lower(:email)"), {"email": email}
        )
    ).first()
    return User.from_row(row) if row else None


async def credentials(conn: AsyncConnection, email: str) -> Credentials | None:
    row = (
        await conn.execute(
            sa.text(f"SELECT {USER_COLUMNS}, u.password_hash FROM users u WHERE lower(u.email) = lower(:email)"),
            {"email": email},
        )
    ).first()
    if row is None:
        return None
    return Credentials(user=User.from_row(row), password_hash=row.password_hash)


async def list_users(conn: AsyncConnection) -> list[User]:
    rows = await conn.execute(sa.text(f"SELECT {USER_COLUMNS} FROM users u ORDER BY u.created_at, u.email"))
    return [User.from_row(r) for r in rows]


async def count_users(conn: AsyncConnection) -> int:
    return int((await conn.execute(sa.text("SELECT count(*) FROM users"))).scalar_one())


async def count_active_admins(conn: AsyncConnection) -> int:
    return int((await conn.execute(sa.text("SELECT count(*) FROM users WHERE is_admin AND is_active"))).scalar_one())


async def first_admin(conn: AsyncConnection) -> User | None:
    """The oldest active admin: who every request acts as when authentication is off."""
    row = (
        await conn.execute(
            sa.text(
                f"SELECT {USER_COLUMNS} FROM users u WHERE u.is_admin AND u.is_active "
                "ORDER BY u.created_at, u.id LIMIT 1"
            )
        )
    ).first()
    return User.from_row(row) if row else None


async def update_flags(
    conn: AsyncConnection, *, user_id: uuid.UUID, is_active: bool | None, is_admin: bool | None
) -> User | None:
    """Set whichever flags are given (None leaves one as it is)."""
    row = (
        await conn.execute(
            sa.text(
                "UPDATE users AS u SET is_active = coalesce(:is_active, u.is_active), "
                "is_admin = coalesce(:is_admin, u.is_admin) "
                f"WHERE u.id = :id RETURNING {USER_COLUMNS}"
            ),
            {"id": user_id, "is_active": is_active, "is_admin": is_admin},
        )
    ).first()
    return User.from_row(row) if row else None


async def record_login(conn: AsyncConnection, *, user_id: uuid.UUID, new_hash: str | None = None) -> None:
    """Note a successful login (storing a rehash if given). Failures are throttled in the rate-limit store, not
    here; the old lockout columns are cleared so that nothing stale remains in them."""
    await conn.execute(
        sa.text(
            "UPDATE users SET failed_logins = 0, locked_until = NULL, last_login_at = now(), "
            "password_hash = coalesce(:hash, password_hash) WHERE id = :id"
        ),
        {"id": user_id, "hash": new_hash},
    )


async def set_password(conn: AsyncConnection, *, user_id: uuid.UUID, password_hash: str) -> None:
    await conn.execute(
        sa.text("UPDATE users SET password_hash = :hash WHERE id = :id"), {"id": user_id, "hash": password_hash}
    )


async def password_hash(conn: AsyncConnection, user_id: uuid.UUID) -> str | None:
    """The user's password hash; None for a user without a password (single sign-on only) or no such user."""
    row = (await conn.execute(sa.text("SELECT password_hash FROM users WHERE id = :id"), {"id": user_id})).first()
    return row.password_hash if row else None


async def active_emails(conn: AsyncConnection) -> list[str]:
    """Every active user's email, sorted."""
    rows = await conn.execute(sa.text("SELECT email FROM users WHERE is_active ORDER BY lower(email)"))
    return [r.email for r in rows]


# --- sessions --------------------------------------------------------------------------------------------


async def insert_session(
    conn: AsyncConnection, *, token_hash: str, user_id: uuid.UUID, csrf_token: str, expires_at: datetime
) -> None:
    await conn.execute(
        sa.text(
            "INSERT INTO sessions (token_hash, user_id, csrf_token, expires_at) "
            "VALUES (:hash, :user_id, :csrf, :expires_at)"
        ),
        {"hash": token_hash, "user_id": user_id, "csrf": csrf_token, "expires_at": expires_at},
    )


async def delete_stale_sessions(conn: AsyncConnection, *, user_id: uuid.UUID) -> None:
    """Housekeeping at login: drop the user's sessions that expired or were revoked more than a day ago."""
    await conn.execute(
        sa.text(
            "DELETE FROM sessions WHERE user_id = :user_id "
            "AND (expires_at < now() - interval '1 day' OR revoked_at < now() - interval '1 day')"
        ),
        {"user_id": user_id},
    )


async def session_by_hash(conn: AsyncConnection, token_hash: str) -> SessionRecord | None:
    row = (
        await conn.execute(
            sa.text(
                f"SELECT {USER_COLUMNS}, s.csrf_token, s.expires_at, s.revoked_at "
                "FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = :hash"
            ),
            {"hash": token_hash},
        )
    ).first()
    if row is None:
        return None
    return SessionRecord(
        user=User.from_row(row), csrf_token=row.csrf_token, expires_at=row.expires_at, revoked_at=row.revoked_at
    )


async def revoke_session(conn: AsyncConnection, token_hash: str) -> None:
    await conn.execute(
        sa.text("UPDATE sessions SET revoked_at = now() WHERE token_hash = :hash AND revoked_at IS NULL"),
        {"hash": token_hash},
    )


async def revoke_user_sessions(conn: AsyncConnection, user_id: uuid.UUID, *, keep_hash: str | None = None) -> int:
    """End the user's live sessions, all but the one whose token hashes to `keep_hash`; how many it ended."""
    result = await conn.execute(
        sa.text(
            "UPDATE sessions SET revoked_at = now() WHERE user_id = :user_id AND revoked_at IS NULL "
            "AND token_hash IS DISTINCT FROM :keep RETURNING token_hash"
        ),
        {"user_id": user_id, "keep": keep_hash},
    )
    return len(result.all())


# --- single sign-on ---------------------------------------------------------------------------------------


async def user_by_identity(conn: AsyncConnection, *, issuer: str, subject: str) -> User | None:
    """The user an OpenID account (issuer and subject) is linked to."""
    row = (
        await conn.execute(
            sa.text(
                f"SELECT {USER_COLUMNS} FROM user_identities i JOIN users u ON u.id = i.user_id "
                "WHERE i.issuer = :issuer AND i.subject = :subject"
            ),
            {"issuer": issuer, "subject": subject},
        )
    ).first()
    return User.from_row(row) if row else None


async def link_identity(conn: AsyncConnection, *, issuer: str, subject: str, user_id: uuid.UUID) -> None:
    await conn.execute(
        sa.text(
            "INSERT INTO user_identities (issuer, subject, user_id) VALUES (:issuer, :subject, :user_id) "
            "ON CONFLICT (issuer, subject) DO NOTHING"
        ),
        {"issuer": issuer, "subject": subject, "user_id": user_id},
    )


async def record_sso_login(conn: AsyncConnection, *, issuer: str, subject: str, user_id: uuid.UUID) -> None:
    """Stamp the user and their identity with the time of a single sign-on."""
    await conn.execute(sa.text("UPDATE users SET last_login_at = now() WHERE id = :id"), {"id": user_id})
    await conn.execute(
        sa.text("UPDATE user_identities SET last_login_at = now() WHERE issuer = :issuer AND subject = :subject"),
        {"issuer": issuer, "subject": subject},
    )


async def insert_oidc_login(
    conn: AsyncConnection,
    *,
    state_hash: str,
    nonce: str,
    code_verifier: str,
    redirect_uri: str,
    next_path: str,
    expires_at: datetime,
) -> None:
    """A sign-in sent to the provider; rows past their expiry are swept on the way."""
    await conn.execute(sa.text("DELETE FROM oidc_logins WHERE expires_at < now()"))
    await conn.execute(
        sa.text(
            "INSERT INTO oidc_logins (state_hash, nonce, code_verifier, redirect_uri, next_path, expires_at) "
            "VALUES (:state_hash, :nonce, :code_verifier, :redirect_uri, :next_path, :expires_at)"
        ),
        {
            "state_hash": state_hash,
            "nonce": nonce,
            "code_verifier": code_verifier,
            "redirect_uri": redirect_uri,
            "next_path": next_path,
            "expires_at": expires_at,
        },
    )


async def take_oidc_login(conn: AsyncConnection, state_hash: str) -> PendingLogin | None:
    """Consume a pending sign-in: it is deleted as it is read, so a state works once; None if used or expired."""
    row = (
        await conn.execute(
            sa.text(
                "DELETE FROM oidc_logins WHERE state_hash = :state_hash "
                "RETURNING nonce, code_verifier, redirect_uri, next_path, expires_at > now() AS live"
            ),
            {"state_hash": state_hash},
        )
    ).first()
    if row is None or not row.live:
        return None
    return PendingLogin(
        nonce=row.nonce, code_verifier=row.code_verifier, redirect_uri=row.redirect_uri, next_path=row.next_path
    )


# --- API keys --------------------------------------------------------------------------------------------


async def insert_key(
    conn: AsyncConnection,
    *,
    user_id: uuid.UUID,
    name: str,
    prefix: str,
    key_hash: str,
    scopes: Sequence[str],
    kb_ids: Sequence[uuid.UUID] | None,
    expires_at: datetime | None,
) -> ApiKey:
    row = (
        await conn.execute(
            sa.text(
                "INSERT INTO api_keys AS k (user_id, name, prefix, key_hash, scopes, kb_ids, expires_at) "
                "VALUES (:user_id, :name, :prefix, :hash, :scopes, :kb_ids, :expires_at) "
                f"RETURNING {KEY_COLUMNS}"
            ),
            {
                "user_id": user_id,
                "name": name,
                "prefix": prefix,
                "hash": key_hash,
                "scopes": list(scopes),
                "kb_ids": None if kb_ids is None else list(kb_ids),
                "expires_at": expires_at,
            },
        )
    ).one()
    return ApiKey.from_row(row)


async def key_by_hash(conn: AsyncConnection, key_hash: str) -> tuple[ApiKey, User] | None:
    """A key and its user, whatever their state (the caller tells revoked, expired and disabled apart)."""
    row = (
        await conn.execute(
            sa.text(
                f"SELECT {KEY_COLUMNS}, u.email AS u_email, u.is_admin AS u_is_admin, u.is_active AS u_is_active, "
                "u.created_at AS u_created_at, u.last_login_at AS u_last_login_at "
                "FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.key_hash = :hash"
            ),
            {"hash": key_hash},
        )
    ).first()
    if row is None:
        return None
    user = User(
        id=row.user_id,
        email=row.u_email,
        is_admin=row.u_is_admin,
        is_active=row.u_is_active,
        created_at=row.u_created_at,
        last_login_at=row.u_last_login_at,
    )
    return ApiKey.from_row(row), user


async def touch_key(conn: AsyncConnection, key_id: uuid.UUID) -> None:
    """Record a use; at most once a minute per key, so busy keys do not write on every request."""
    await conn.execute(
        sa.text(
            "UPDATE api_keys SET last_used_at = now() "
            "WHERE id = :id AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')"
        ),
        {"id": key_id},
    )


async def list_keys(conn: AsyncConnection, *, user_id: uuid.UUID | None) -> list[ApiKey]:
    """Keys not revoked: one user's, or everyone's when `user_id` is None."""
    owner = "" if user_id is None else "AND k.user_id = :user_id"
    rows = await conn.execute(
        sa.text(f"SELECT {KEY_COLUMNS} FROM api_keys k WHERE k.revoked_at IS NULL {owner} ORDER BY k.created_at, k.id"),
        {"user_id": user_id},
    )
    return [ApiKey.from_row(r) for r in rows]


async def revoke_key(conn: AsyncConnection, *, key_id: uuid.UUID, user_id: uuid.UUID | None) -> bool:
    """Revoke a key (one of `user_id`'s, or anyone's when None); False if there was no such live key."""
    owner = "" if user_id is None else "AND user_id = :user_id"
    result = await conn.execute(
        sa.text(f"UPDATE api_keys SET revoked_at = now() WHERE id = :id AND revoked_at IS NULL {owner} RETURNING id"),
        {"id": key_id, "user_id": user_id},
    )
    return result.first() is not None
