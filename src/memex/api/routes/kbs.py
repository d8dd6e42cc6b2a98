"""Knowledge bases and their members: `/api/kbs`. Rules live in kbs/service.py."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from memex.api.deps import ConnDep, CurrentActor
from memex.api.schemas import KbIn, KbOut, KbPatch, MemberIn, MemberOut, error_responses
from memex.kbs import service
from memex.kbs.access import Role
from memex.kbs.models import KbListing

router = APIRouter(prefix="/api/kbs", tags=["knowledge bases"], responses=error_responses(400, 401, 403, 404, 409, 422))


@router.get("")
async def list_kbs(actor: CurrentActor, conn: ConnDep) -> list[KbOut]:
    """The knowledge bases the caller may read, with their role and document count."""
    return [KbOut.of(listing) for listing in await service.list_kbs(conn, actor)]


@router.post("", status_code=201)
async def create(body: KbIn, actor: CurrentActor, conn: ConnDep) -> KbOut:
    """Create a knowledge base owned by the caller (409 if they already have one of that name)."""
    kb = await service.create_kb(conn, actor, name=body.name, description=body.description)
    return KbOut.of(KbListing(kb=kb, document_count=0))


@router.get("/{kb}")
async def get(kb: uuid.UUID, actor: CurrentActor, conn: ConnDep) -> KbOut:
    return KbOut.of(await service.get_kb(conn, actor, kb))


@router.patch("/{kb}")
async def update(kb: uuid.UUID, body: KbPatch, actor: CurrentActor, conn: ConnDep) -> KbOut:
    """Rename a knowledge base or change its description (owner or admin)."""
    await service.update_kb(conn, actor, kb, name=body.name, description=body.description)
    return KbOut.of(await service.get_kb(conn, actor, kb))


@router.delete("/{kb}", status_code=204)
async def delete(kb: uuid.UUID, actor: CurrentActor, conn: ConnDep) -> None:
    """Delete a knowledge base and all its documents (owner or admin; personal KBs stay)."""
    await service.delete_kb(conn, actor, kb)


@router.get("/{kb}/members")
async def members(kb: uuid.UUID, actor: CurrentActor, conn: ConnDep) -> list[MemberOut]:
    return [MemberOut.of(m) for m in await service.list_members(conn, actor, kb)]


@router.post("/{kb}/members")
async def share(kb: uuid.UUID, body: MemberIn, actor: CurrentActor, conn: ConnDep) -> MemberOut:
    """Share with a user as viewer or editor (owner or admin); sharing again changes the role."""
    return MemberOut.of(await service.share(conn, actor, kb, email=body.email, role=Role[body.role]))


@router.delete("/{kb}/members/{user_id}", status_code=204)
async def unshare(kb: uuid.UUID, user_id: uuid.UUID, actor: CurrentActor, conn: ConnDep) -> None:
    """Remove a member (owner or admin, or members themselves to leave)."""
    await service.unshare(conn, actor, kb, user_id)
