"""Knowledge bases, their members and invitations: `/api/kbs`, `/api/invitations`. Rules live in kbs/service.py."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from memex.api.deps import ConnDep, CurrentActor
from memex.api.schemas import (
    DetailOut,
    InvitationOut,
    KbIn,
    KbOut,
    KbPatch,
    MemberIn,
    MemberOut,
    MemberPatch,
    PeopleOut,
    error_responses,
)
from memex.kbs import service
from memex.kbs.access import Role
from memex.kbs.models import KbListing

router = APIRouter(prefix="/api", responses=error_responses(400, 401, 403, 404, 409, 422))


@router.get("/kbs", tags=["knowledge bases"])
async def list_kbs(actor: CurrentActor, conn: ConnDep) -> list[KbOut]:
    """The knowledge bases the caller may read, with their role and document count."""
    return [KbOut.of(listing) for listing in await service.list_kbs(conn, actor)]


@router.post("/kbs", status_code=201, tags=["knowledge bases"])
async def create(body: KbIn, actor: CurrentActor, conn: ConnDep) -> KbOut:
    """Create a knowledge base owned by the caller (409 if they already have one of that name)."""
    kb = await service.create_kb(conn, actor, name=body.name, description=body.description)
    return KbOut.of(KbListing(kb=kb, document_count=0))


@router.get("/kbs/{kb}", tags=["knowledge bases"])
async def get(kb: uuid.UUID, actor: CurrentActor, conn: ConnDep) -> KbOut:
    return KbOut.of(await service.get_kb(conn, actor, kb))


@router.patch("/kbs/{kb}", tags=["knowledge bases"])
async def update(kb: uuid.UUID, body: KbPatch, actor: CurrentActor, conn: ConnDep) -> KbOut:
    """Rename a knowledge base or change its description (owner or admin)."""
    await service.update_kb(conn, actor, kb, name=body.name, description=body.description)
    return KbOut.of(await service.get_kb(conn, actor, kb))


@router.delete("/kbs/{kb}", status_code=204, tags=["knowledge bases"])
async def delete(kb: uuid.UUID, actor: CurrentActor, conn: ConnDep) -> None:
    """Delete a knowledge base and all its documents (owner or admin; personal KBs stay)."""
    await service.delete_kb(conn, actor, kb)


@router.get("/kbs/{kb}/members", tags=["knowledge bases"])
async def members(kb: uuid.UUID, actor: CurrentActor, conn: ConnDep) -> list[MemberOut]:
    """The members who accepted (pending invitations are not listed: they would tell whether an address has an
    account)."""
    return [MemberOut.of(m) for m in await service.list_members(conn, actor, kb)]


@router.post("/kbs/{kb}/members", status_code=202, tags=["knowledge bases"])
async def share(kb: uuid.UUID, body: MemberIn, actor: CurrentActor, conn: ConnDep) -> DetailOut:
    """Invite a user as viewer or editor (owner or admin); the same answer whether or not the address has an account.

    The knowledge base is shared once they accept; inviting a member again changes their role.
    """
    return DetailOut(detail=await service.invite(conn, actor, kb, email=body.email, role=Role[body.role]))


@router.patch("/kbs/{kb}/members/{user_id}", tags=["knowledge bases"])
async def change_role(
    kb: uuid.UUID, user_id: uuid.UUID, body: MemberPatch, actor: CurrentActor, conn: ConnDep
) -> MemberOut:
    """Make a member a viewer or an editor (owner or admin); the owner's role stays."""
    return MemberOut.of(await service.change_role(conn, actor, kb, user_id, role=Role[body.role]))


@router.get("/share-suggestions", tags=["knowledge bases"])
async def share_suggestions(actor: CurrentActor, conn: ConnDep) -> PeopleOut:
    """Emails to offer when sharing: every active user for admins, only people the caller already shares a
    knowledge base with for everyone else (so the list reveals no other accounts)."""
    return PeopleOut(emails=await service.share_suggestions(conn, actor))


@router.delete("/kbs/{kb}/members/{user_id}", status_code=204, tags=["knowledge bases"])
async def unshare(kb: uuid.UUID, user_id: uuid.UUID, actor: CurrentActor, conn: ConnDep) -> None:
    """Remove a member (owner or admin, or members themselves to leave)."""
    await service.unshare(conn, actor, kb, user_id)


@router.get("/invitations", tags=["invitations"])
async def invitations(actor: CurrentActor, conn: ConnDep) -> list[InvitationOut]:
    """Knowledge bases shared with the caller, waiting to be accepted or declined (not with a restricted key)."""
    return [InvitationOut.of(i) for i in await service.list_invitations(conn, actor)]


@router.post("/invitations/{kb}/accept", tags=["invitations"])
async def accept(kb: uuid.UUID, actor: CurrentActor, conn: ConnDep) -> KbOut:
    """Accept an invitation: the knowledge base joins the caller's list, search and chat."""
    await service.answer_invitation(conn, actor, kb, accept=True)
    return KbOut.of(await service.get_kb(conn, actor, kb))


@router.delete("/invitations/{kb}", status_code=204, tags=["invitations"])
async def decline(kb: uuid.UUID, actor: CurrentActor, conn: ConnDep) -> None:
    """Decline an invitation: it is deleted, and the knowledge base stays out of reach."""
    await service.answer_invitation(conn, actor, kb, accept=False)
