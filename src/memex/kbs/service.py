"""Knowledge-base rules: who may read, change, share and delete a KB.

Every decision goes through the SQL filter in `kbs.access`: a KB the actor cannot read is "not found"
(so ids cannot be probed), one they can read but lack the role for is "permission denied".
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncConnection

from memex.accounts import store as accounts
from memex.audit import service as audit
from memex.audit.models import Action
from memex.documents import store as documents
from memex.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from memex.kbs import store
from memex.kbs.access import Actor, Role, scope_for
from memex.kbs.models import Invitation, KbListing, KbOwnership, KnowledgeBase, Member

PERSONAL_KB = "Personal"
MAX_NAME = 200
MAX_DESCRIPTION = 2000
SHARE_ROLES = (Role.viewer, Role.editor)


async def require_kb(conn: AsyncConnection, actor: Actor, kb_id: uuid.UUID, role: Role = Role.viewer) -> KnowledgeBase:
    """The KB if the actor holds `role` on it: NotFound if unreadable, PermissionDenied if the role falls short."""
    kb = await store.get_for(conn, actor, kb_id, Role.viewer)
    if kb is None:
        raise NotFound("knowledge base not found")
    if role > Role.viewer:
        actor.require_scope(scope_for(role))
        if await store.get_for(conn, actor, kb_id, role) is None:
            raise PermissionDenied(_role_needed(role))
    return kb


def _role_needed(role: Role) -> str:
    if role is Role.owner:
        return "only the owner of this knowledge base or an admin can do this"
    return f"you need the {role.name} role on this knowledge base to do this"


async def list_kbs(conn: AsyncConnection, actor: Actor) -> list[KbListing]:
    """The KBs the actor may read, with their role and document count."""
    found = await store.list_for(conn, actor)
    counts = await store.document_counts(conn, [kb.id for kb in found])
    return [KbListing(kb=kb, document_count=counts.get(kb.id, 0)) for kb in found]


async def get_kb(conn: AsyncConnection, actor: Actor, kb_id: uuid.UUID) -> KbListing:
    kb = await require_kb(conn, actor, kb_id)
    counts = await store.document_counts(conn, [kb.id])
    return KbListing(kb=kb, document_count=counts.get(kb.id, 0))


def _clean_name(name: str) -> str:
    cleaned = " ".join(name.split())
    if not cleaned:
        raise InvalidInput("a knowledge base needs a name")
    if len(cleaned) > MAX_NAME:
        raise InvalidInput(f"a knowledge base name is at most {MAX_NAME} characters")
    return cleaned


def _clean_description(description: str) -> str:
    if len(description) > MAX_DESCRIPTION:
        raise InvalidInput(f"a description is at most {MAX_DESCRIPTION} characters")
    return description.strip()


async def create_kb(
    conn: AsyncConnection, actor: Actor, *, name: str, description: str = "", owner: uuid.UUID | None = None
) -> KnowledgeBase:
    """A new KB owned by `owner` (default: the actor; the system actor without an owner makes a local, ownerless KB)."""
    actor.require_scope("write")
    if actor.kb_ids is not None:
        raise PermissionDenied("this API key is limited to some knowledge bases and cannot create new ones")
    if owner is not None and owner != actor.user_id and not actor.is_system:
        raise PermissionDenied("you can only create knowledge bases for yourself")
    owner_id = owner if owner is not None else actor.user_id
    name = _clean_name(name)
    if await store.name_taken(conn, owner_id=owner_id, name=name):
        raise Conflict(f"you already have a knowledge base named {name!r}")
    kb = await store.create(conn, name=name, owner_id=owner_id, description=_clean_description(description))
    await audit.record(
        conn,
        action=Action.kb_created,
        actor=actor,
        target_type="kb",
        target_id=kb.id,
        detail={"name": kb.name, "owner_id": str(owner_id) if owner_id else None},
    )
    return kb


async def create_personal_kb(conn: AsyncConnection, user_id: uuid.UUID) -> KnowledgeBase:
    """Every user's own KB, made with the account; it cannot be deleted."""
    return await store.create(conn, name=PERSONAL_KB, owner_id=user_id, is_personal=True)


async def update_kb(
    conn: AsyncConnection, actor: Actor, kb_id: uuid.UUID, *, name: str | None = None, description: str | None = None
) -> KnowledgeBase:
    """Rename a KB or change its description (owner or admin)."""
    kb = await require_kb(conn, actor, kb_id, Role.owner)
    if name is not None:
        name = _clean_name(name)
        if name != kb.name and await store.name_taken(conn, owner_id=kb.owner_id, name=name, except_id=kb.id):
            raise Conflict(f"the owner already has a knowledge base named {name!r}")
    await store.update(
        conn, kb_id=kb.id, name=name, description=None if description is None else _clean_description(description)
    )
    return await require_kb(conn, actor, kb_id)


async def delete_kb(conn: AsyncConnection, actor: Actor, kb_id: uuid.UUID) -> None:
    """Delete a KB with all its documents (owner or admin); a personal KB stays."""
    kb = await require_kb(conn, actor, kb_id, Role.owner)
    if kb.is_personal:
        raise Conflict("a personal knowledge base cannot be deleted")
    shas = await store.delete(conn, kb_id=kb.id)
    await documents.delete_orphan_blobs(conn, shas=shas)
    await audit.record(
        conn, action=Action.kb_deleted, actor=actor, target_type="kb", target_id=kb.id, detail={"name": kb.name}
    )


async def list_members(conn: AsyncConnection, actor: Actor, kb_id: uuid.UUID) -> list[Member]:
    """Who has access to a KB; anyone who can read it may see this."""
    kb = await require_kb(conn, actor, kb_id)
    return await store.members(conn, kb_id=kb.id)


async def invite(conn: AsyncConnection, actor: Actor, kb_id: uuid.UUID, *, email: str, role: Role) -> str:
    """Invite a user as viewer or editor (owner or admin); the KB counts for them once they accept.

    The answer reads the same whether or not the address has an account, and an unknown address creates nothing.
    Inviting an accepted member again changes their role (the member list shows them anyway).
    """
    kb = await require_kb(conn, actor, kb_id, Role.owner)
    if role not in SHARE_ROLES:
        raise InvalidInput("a knowledge base can be shared as viewer or editor")
    email = email.strip()
    user = await accounts.get_user_by_email(conn, email)
    if user is not None and user.id == kb.owner_id:
        raise Conflict("this user owns the knowledge base")
    existing = None if user is None else await store.member(conn, kb_id=kb.id, user_id=user.id)
    if user is not None:
        await store.add_member(conn, kb_id=kb.id, user_id=user.id, role=role)
        accepted = existing is not None and existing.accepted_at is not None
        await audit.record(
            conn,
            action=Action.kb_shared if accepted else Action.kb_invited,
            actor=actor,
            target_type="kb",
            target_id=kb.id,
            detail={"user_id": str(user.id), "email": user.email, "role": role.name},
        )
        if accepted:
            return f"{user.email} is now {role.name} of this knowledge base."
    return (
        f"If {email} has an account, they have been invited as {role.name}; "
        "the knowledge base is shared once they accept."
    )


async def add_member(conn: AsyncConnection, actor: Actor, kb_id: uuid.UUID, *, email: str, role: Role) -> Member:
    """Make a user a member at once, without an invitation: only the local system (the CLI on the database) may."""
    if not actor.is_system:
        raise PermissionDenied("only the local command line adds members without an invitation")
    kb = await require_kb(conn, actor, kb_id, Role.owner)
    if role not in SHARE_ROLES:
        raise InvalidInput("a knowledge base can be shared as viewer or editor")
    user = await accounts.get_user_by_email(conn, email.strip())
    if user is None:
        raise NotFound("no user with this email")
    if user.id == kb.owner_id:
        raise Conflict("this user owns the knowledge base")
    await store.add_member(conn, kb_id=kb.id, user_id=user.id, role=role, accepted=True)
    await audit.record(
        conn,
        action=Action.kb_shared,
        actor=actor,
        target_type="kb",
        target_id=kb.id,
        detail={"user_id": str(user.id), "email": user.email, "role": role.name},
    )
    found = await store.member(conn, kb_id=kb.id, user_id=user.id)
    assert found is not None
    return found


async def list_invitations(conn: AsyncConnection, actor: Actor) -> list[Invitation]:
    """The KBs shared with the actor that they have not accepted yet."""
    actor.require_unrestricted("see or answer invitations")
    if actor.user_id is None:
        return []
    return await store.invitations(conn, user_id=actor.user_id)


async def answer_invitation(conn: AsyncConnection, actor: Actor, kb_id: uuid.UUID, *, accept: bool) -> None:
    """Accept a pending invitation (the KB joins the actor's search, chat and list) or decline it (it is deleted)."""
    actor.require_unrestricted("see or answer invitations")
    actor.require_scope("write")
    if actor.user_id is None:
        raise NotFound("invitation not found")
    answer = store.accept_invitation if accept else store.decline_invitation
    role = await answer(conn, kb_id=kb_id, user_id=actor.user_id)
    if role is None:
        raise NotFound("invitation not found")
    await audit.record(
        conn,
        action=Action.kb_invitation_accepted if accept else Action.kb_invitation_declined,
        actor=actor,
        target_type="kb",
        target_id=kb_id,
        detail={"user_id": str(actor.user_id), "role": role},
    )


async def list_all_kbs(conn: AsyncConnection, actor: Actor) -> list[KbOwnership]:
    """Every KB with its real owner and counts, never its contents (admins only)."""
    if not actor.is_admin:
        raise PermissionDenied("administrators only")
    return await store.list_all(conn)


async def unshare(conn: AsyncConnection, actor: Actor, kb_id: uuid.UUID, user_id: uuid.UUID) -> None:
    """Remove a member (owner or admin); members may also remove themselves. The owner cannot be removed."""
    leaving = user_id == actor.user_id
    kb = await require_kb(conn, actor, kb_id, Role.viewer if leaving else Role.owner)
    if leaving:
        actor.require_scope("write")
    found = await store.member(conn, kb_id=kb.id, user_id=user_id)
    if found is None:
        raise NotFound("this user is not a member of this knowledge base")
    if found.role == Role.owner.name:
        raise Conflict("the owner of a knowledge base cannot be removed from it")
    await store.remove_member(conn, kb_id=kb.id, user_id=user_id)
    await audit.record(
        conn,
        action=Action.kb_unshared,
        actor=actor,
        target_type="kb",
        target_id=kb.id,
        detail={"user_id": str(user_id), "email": found.email, "role": found.role},
    )


async def change_role(
    conn: AsyncConnection, actor: Actor, kb_id: uuid.UUID, user_id: uuid.UUID, *, role: Role
) -> Member:
    """Make a member a viewer or an editor (owner or admin); an invitation not yet accepted is not a member yet."""
    kb = await require_kb(conn, actor, kb_id, Role.owner)
    if role not in SHARE_ROLES:
        raise InvalidInput("a member can be a viewer or an editor")
    found = await store.member(conn, kb_id=kb.id, user_id=user_id)
    if found is None or found.accepted_at is None:
        raise NotFound("this user is not a member of this knowledge base")
    if found.role == Role.owner.name:
        raise Conflict("the owner's role cannot be changed")
    if found.role != role.name:
        await store.set_member_role(conn, kb_id=kb.id, user_id=user_id, role=role)
        await audit.record(
            conn,
            action=Action.kb_role_changed,
            actor=actor,
            target_type="kb",
            target_id=kb.id,
            detail={"user_id": str(user_id), "email": found.email, "role": role.name, "previous_role": found.role},
        )
    changed = await store.member(conn, kb_id=kb.id, user_id=user_id)
    assert changed is not None
    return changed


async def share_suggestions(conn: AsyncConnection, actor: Actor) -> list[str]:
    """Emails to suggest when sharing: every active user for an admin, else only the people the actor already
    shares a knowledge base with, so that the list tells nobody which other addresses have accounts."""
    if actor.is_admin and "admin" in actor.scopes:
        me = None if actor.user_id is None else await accounts.get_user(conn, actor.user_id)
        return [email for email in await accounts.active_emails(conn) if me is None or email != me.email]
    return await store.co_member_emails(conn, actor)


async def find_local_kb(conn: AsyncConnection, name_or_id: str, *, create: bool) -> KnowledgeBase | None:
    """The KB a local command means by `--kb`: by id, else by name, the local (ownerless) KBs first.

    A name several users' KBs share is ambiguous (InvalidInput listing their ids); with `create`, an unknown
    name becomes a new local KB."""
    actor = Actor.system()
    try:
        kb_id: uuid.UUID | None = uuid.UUID(name_or_id)
    except ValueError:
        kb_id = None
    if kb_id is not None:
        return await store.get_for(conn, actor, kb_id)
    found = await store.find_by_name(conn, actor, name_or_id)
    local = [kb for kb in found if kb.owner_id is None]
    if local:
        return local[0]
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        ids = ", ".join(str(kb.id) for kb in found)
        raise InvalidInput(f"several knowledge bases are named {name_or_id!r}; pass one of these ids to --kb: {ids}")
    if not create:
        return None
    await store.create_if_absent(conn, name=name_or_id, owner_id=None)
    return (await store.find_by_name(conn, actor, name_or_id))[0]
