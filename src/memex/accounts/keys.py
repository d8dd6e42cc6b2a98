"""API keys: created with scopes and optional KB limits, shown once, stored as a sha256 hash, revocable."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from memex.accounts import store, tokens
from memex.accounts.models import ApiKey, NewApiKey
from memex.audit import service as audit
from memex.audit.models import Action
from memex.errors import AuthenticationRequired, InvalidInput, NotFound, PermissionDenied
from memex.kbs import service as kbs
from memex.kbs.access import SCOPES, Actor

MAX_NAME = 100
MAX_LIFETIME = timedelta(days=36525)


def _clean_scopes(scopes: Sequence[str]) -> list[str]:
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise InvalidInput(f"unknown scope {unknown[0]!r}: use read, write or admin")
    if not scopes:
        raise InvalidInput("an API key needs at least one scope: read, write or admin")
    return [s for s in SCOPES if s in scopes]


def _clean_expiry(expires_at: datetime | None) -> datetime | None:
    if expires_at is None:
        return None
    if expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=UTC)  # a time without a zone is taken as UTC
    now = datetime.now(UTC)
    if expires_at <= now:
        raise InvalidInput("expires_at must be in the future")
    if expires_at > now + MAX_LIFETIME:
        raise InvalidInput(
            "expires_at is too far away: at most 100 years from now, or none for a key that never expires"
        )
    return expires_at


async def create_key(
    conn: AsyncConnection,
    actor: Actor,
    *,
    name: str,
    scopes: Sequence[str],
    kb_ids: Sequence[uuid.UUID] | None = None,
    expires_at: datetime | None = None,
) -> NewApiKey:
    """A new key for the actor's user. It never grants more than the actor holds: scopes, admin rights, KBs."""
    if actor.user_id is None:
        raise InvalidInput("an API key belongs to a user")
    actor.require_unrestricted("manage API keys")
    name = " ".join(name.split())
    if not name or len(name) > MAX_NAME:
        raise InvalidInput(f"an API key needs a name of 1 to {MAX_NAME} characters")
    wanted = _clean_scopes(scopes)
    if "admin" in wanted and not actor.is_admin:
        raise PermissionDenied("only administrators can create keys with the admin scope")
    for scope in wanted:
        actor.require_scope(scope)
    limited: list[uuid.UUID] | None = None
    if kb_ids:
        limited = list(dict.fromkeys(kb_ids))
        for kb_id in limited:
            await kbs.require_kb(conn, actor, kb_id)  # NotFound for a KB the user cannot read
    elif actor.kb_ids is not None:
        limited = sorted(actor.kb_ids)  # a key made with a limited key is limited the same way
    material = tokens.new_api_key()
    key = await store.insert_key(
        conn,
        user_id=actor.user_id,
        name=name,
        prefix=material.prefix,
        key_hash=material.hash,
        scopes=wanted,
        kb_ids=limited,
        expires_at=_clean_expiry(expires_at),
    )
    await audit.record(
        conn,
        action=Action.key_created,
        actor=actor,
        target_type="api_key",
        target_id=key.id,
        detail={"name": key.name, "prefix": key.prefix, "scopes": list(key.scopes), "user_id": str(key.user_id)},
    )
    return NewApiKey(key=key, secret=material.secret)


async def list_keys(conn: AsyncConnection, actor: Actor) -> list[ApiKey]:
    """The actor's live keys (everyone's for the system actor); never their secrets."""
    actor.require_unrestricted("manage API keys")
    return await store.list_keys(conn, user_id=actor.user_id)


async def revoke_key(conn: AsyncConnection, actor: Actor, key_id: uuid.UUID) -> None:
    """Revoke one of the actor's keys (any key for the system actor); it stops working on the next request."""
    actor.require_unrestricted("manage API keys")
    if not await store.revoke_key(conn, key_id=key_id, user_id=actor.user_id):
        raise NotFound("API key not found")
    await audit.record(conn, action=Action.key_revoked, actor=actor, target_type="api_key", target_id=key_id)


async def key_actor(conn: AsyncConnection, secret: str) -> Actor:
    """The actor behind an API key, or AuthenticationRequired saying precisely why the key does not work."""
    if not tokens.looks_like_api_key(secret):
        raise AuthenticationRequired("invalid API key")
    found = await store.key_by_hash(conn, tokens.digest(secret))
    if found is None:
        raise AuthenticationRequired("invalid API key")
    key, user = found
    if key.revoked_at is not None:
        raise AuthenticationRequired("API key revoked")
    if key.expires_at is not None and key.expires_at <= datetime.now(UTC):
        raise AuthenticationRequired("API key expired")
    if not user.is_active:
        raise AuthenticationRequired("this account is disabled: ask an administrator")
    await store.touch_key(conn, key.id)
    return Actor(
        user_id=user.id,
        is_admin=user.is_admin,
        scopes=frozenset(key.scopes),
        kb_ids=None if key.kb_ids is None else frozenset(key.kb_ids),
        api_key_id=key.id,
    )
