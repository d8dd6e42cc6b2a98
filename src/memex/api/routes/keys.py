"""API keys of the caller: `/api/keys`. The key itself is returned once, at creation."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path

from memex.accounts import keys
from memex.api.deps import ConnDep, CurrentActor
from memex.api.schemas import KeyCreated, KeyIn, KeyOut, error_responses

router = APIRouter(prefix="/api/keys", tags=["keys"], responses=error_responses(400, 401, 403, 404, 422))


@router.post("", status_code=201)
async def create(body: KeyIn, actor: CurrentActor, conn: ConnDep) -> KeyCreated:
    """Create a key with scopes (read, write, admin), optionally limited to some KBs and with an expiry."""
    new = await keys.create_key(
        conn, actor, name=body.name, scopes=body.scopes, kb_ids=body.kbs, expires_at=body.expires_at
    )
    return KeyCreated(**KeyOut.of(new.key).model_dump(), key=new.secret)


@router.get("")
async def list_keys(actor: CurrentActor, conn: ConnDep) -> list[KeyOut]:
    """The caller's live keys, without their secrets."""
    return [KeyOut.of(k) for k in await keys.list_keys(conn, actor)]


@router.delete("/{id}", status_code=204)
async def revoke(key_id: Annotated[uuid.UUID, Path(alias="id")], actor: CurrentActor, conn: ConnDep) -> None:
    """Revoke one of the caller's keys: it stops working on the next request."""
    await keys.revoke_key(conn, actor, key_id)
