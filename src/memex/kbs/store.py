"""All SQL about knowledge bases and their members."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from memex.documents import store as documents
from memex.kbs.access import Actor, Role, kb_filter
from memex.kbs.models import Invitation, KbOwnership, KnowledgeBase, Member

_COLUMNS = "kb.id, kb.name, kb.description, kb.owner_id, kb.is_personal, kb.created_at"
# What a KB's owner is called where the KB is shown: the local part of their email (never an id).
_MEMBER_COLUMNS = "m.user_id, u.email, m.role, m.created_at, m.accepted_at"
_OWNER_NAME = "(SELECT split_part(o.email, '@', 1) FROM users o WHERE o.id = kb.owner_id) AS owner_name"


def _role_sql(actor: Actor) -> tuple[str, dict[str, object]]:
    """The actor's role on each KB, as a SQL expression (the system is owner; admins are owners of what they reach
    beyond their memberships, that is every KB but other users' personal ones)."""
    if actor.is_system:
        return "'owner'", {}
    admin = "OR NOT kb.is_personal " if actor.is_admin else ""
    return (
        f"CASE WHEN kb.owner_id = :role_user_id {admin}THEN 'owner' ELSE (SELECT m.role FROM kb_members m "
        "WHERE m.kb_id = kb.id AND m.user_id = :role_user_id AND m.accepted_at IS NOT NULL) END",
        {"role_user_id": actor.user_id},
    )


async def list_for(conn: AsyncConnection, actor: Actor, role: Role = Role.viewer) -> list[KnowledgeBase]:
    """KBs the actor holds at least `role` on, by name."""
    where, params = kb_filter(actor, role)
    role_sql, role_params = _role_sql(actor)
    rows = await conn.execute(
        sa.text(
            f"SELECT {_COLUMNS}, {_OWNER_NAME}, {role_sql} AS role FROM knowledge_bases kb "
            f"WHERE {where} ORDER BY kb.name, kb.id"
        ),
        params | role_params,
    )
    return [KnowledgeBase.from_row(r) for r in rows]


async def get_for(
    conn: AsyncConnection, actor: Actor, kb_id: uuid.UUID, role: Role = Role.viewer
) -> KnowledgeBase | None:
    where, params = kb_filter(actor, role)
    role_sql, role_params = _role_sql(actor)
    row = (
        await conn.execute(
            sa.text(
                f"SELECT {_COLUMNS}, {_OWNER_NAME}, {role_sql} AS role FROM knowledge_bases kb "
                f"WHERE kb.id = :kb_id AND {where}"
            ),
            params | role_params | {"kb_id": kb_id},
        )
    ).first()
    return KnowledgeBase.from_row(row) if row else None


async def find_by_name(conn: AsyncConnection, actor: Actor, name: str) -> list[KnowledgeBase]:
    """KBs with this name the actor can read (names are unique per owner, so there may be several)."""
    where, params = kb_filter(actor, Role.viewer)
    role_sql, role_params = _role_sql(actor)
    rows = await conn.execute(
        sa.text(
            f"SELECT {_COLUMNS}, {_OWNER_NAME}, {role_sql} AS role FROM knowledge_bases kb "
            f"WHERE kb.name = :name AND {where} "
            # The caller's own KB first, then KBs made by the local CLI, then shared ones.
            "ORDER BY (kb.owner_id IS NOT DISTINCT FROM :me) DESC, (kb.owner_id IS NULL) DESC, kb.created_at"
        ),
        params | role_params | {"name": name, "me": actor.user_id},
    )
    return [KnowledgeBase.from_row(r) for r in rows]


async def create(
    conn: AsyncConnection, *, name: str, owner_id: uuid.UUID | None, description: str = "", is_personal: bool = False
) -> KnowledgeBase:
    row = (
        await conn.execute(
            sa.text(
                "INSERT INTO knowledge_bases (name, description, owner_id, is_personal) "
                "VALUES (:name, :description, :owner_id, :is_personal) "
                f"RETURNING {_COLUMNS.replace('kb.', '')}, 'owner' AS role"
            ),
            {"name": name, "description": description, "owner_id": owner_id, "is_personal": is_personal},
        )
    ).one()
    if owner_id is not None:
        await add_member(conn, kb_id=row.id, user_id=owner_id, role=Role.owner, accepted=True)
    return KnowledgeBase.from_row(row)


async def create_if_absent(conn: AsyncConnection, *, name: str, owner_id: uuid.UUID | None) -> None:
    """Create the KB unless one of that name and owner exists (safe when processes race)."""
    await conn.execute(
        sa.text(
            "INSERT INTO knowledge_bases (name, owner_id) VALUES (:name, :owner_id) "
            "ON CONFLICT ON CONSTRAINT knowledge_bases_owner_name_key DO NOTHING"
        ),
        {"name": name, "owner_id": owner_id},
    )


async def add_member(
    conn: AsyncConnection, *, kb_id: uuid.UUID, user_id: uuid.UUID, role: Role, accepted: bool = False
) -> None:
    """A membership with this role: an invitation until accepted (the owner's own membership is accepted at once).

    Sharing again changes the role and keeps the membership accepted or pending as it was, unless `accepted`.
    """
    await conn.execute(
        sa.text(
            "INSERT INTO kb_members (kb_id, user_id, role, accepted_at) "
            "VALUES (:kb_id, :user_id, :role, CASE WHEN :accepted THEN now() END) "
            "ON CONFLICT (kb_id, user_id) DO UPDATE SET role = EXCLUDED.role, "
            "accepted_at = coalesce(kb_members.accepted_at, EXCLUDED.accepted_at)"
        ),
        {"kb_id": kb_id, "user_id": user_id, "role": role.name, "accepted": accepted},
    )


async def accept_invitation(conn: AsyncConnection, *, kb_id: uuid.UUID, user_id: uuid.UUID) -> str | None:
    """Accept a pending invitation; its role, or None when there was none pending."""
    row = await conn.execute(
        sa.text(
            "UPDATE kb_members SET accepted_at = now() "
            "WHERE kb_id = :kb_id AND user_id = :user_id AND accepted_at IS NULL RETURNING role"
        ),
        {"kb_id": kb_id, "user_id": user_id},
    )
    return row.scalar_one_or_none()


async def decline_invitation(conn: AsyncConnection, *, kb_id: uuid.UUID, user_id: uuid.UUID) -> str | None:
    """Delete a pending invitation; its role, or None when there was none pending."""
    row = await conn.execute(
        sa.text(
            "DELETE FROM kb_members WHERE kb_id = :kb_id AND user_id = :user_id AND accepted_at IS NULL RETURNING role"
        ),
        {"kb_id": kb_id, "user_id": user_id},
    )
    return row.scalar_one_or_none()


async def invitations(conn: AsyncConnection, *, user_id: uuid.UUID) -> list[Invitation]:
    """The user's pending invitations, newest first."""
    rows = await conn.execute(
        sa.text(
            f"SELECT {_COLUMNS}, {_OWNER_NAME}, m.role, m.created_at AS invited_at "
            "FROM kb_members m JOIN knowledge_bases kb ON kb.id = m.kb_id "
            "WHERE m.user_id = :user_id AND m.accepted_at IS NULL ORDER BY m.created_at DESC, kb.id"
        ),
        {"user_id": user_id},
    )
    return [Invitation(kb=KnowledgeBase.from_row(r), invited_at=r.invited_at) for r in rows]


async def list_all(conn: AsyncConnection) -> list[KbOwnership]:
    """Every KB with its real owner's email and its counts of documents and accepted members (admin view)."""
    rows = await conn.execute(
        sa.text(
            f"SELECT {_COLUMNS}, {_OWNER_NAME}, NULL AS role, u.email AS owner_email, "
            "(SELECT count(*) FROM documents d WHERE d.kb_id = kb.id) AS document_count, "
            "(SELECT count(*) FROM kb_members m WHERE m.kb_id = kb.id AND m.accepted_at IS NOT NULL) AS member_count "
            "FROM knowledge_bases kb LEFT JOIN users u ON u.id = kb.owner_id "
            "ORDER BY u.email NULLS FIRST, kb.name, kb.id"
        )
    )
    return [
        KbOwnership(
            kb=KnowledgeBase.from_row(r),
            owner_email=r.owner_email,
            document_count=r.document_count,
            member_count=r.member_count,
        )
        for r in rows
    ]


async def document_counts(conn: AsyncConnection, kb_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    rows = await conn.execute(
        sa.text("SELECT kb_id, count(*) AS n FROM documents WHERE kb_id = ANY(:ids) GROUP BY kb_id"), {"ids": kb_ids}
    )
    return {r.kb_id: r.n for r in rows}


async def name_taken(
    conn: AsyncConnection, *, owner_id: uuid.UUID | None, name: str, except_id: uuid.UUID | None = None
) -> bool:
    """Whether the owner (or the local CLI, for None) already has a KB of this name, other than `except_id`."""
    row = await conn.execute(
        sa.text(
            "SELECT 1 FROM knowledge_bases "
            "WHERE owner_id IS NOT DISTINCT FROM CAST(:owner_id AS uuid) AND name = :name "
            "AND id IS DISTINCT FROM CAST(:except_id AS uuid)"
        ),
        {"owner_id": owner_id, "name": name, "except_id": except_id},
    )
    return row.first() is not None


async def update(conn: AsyncConnection, *, kb_id: uuid.UUID, name: str | None, description: str | None) -> None:
    """Set whichever of name and description is given."""
    await conn.execute(
        sa.text(
            "UPDATE knowledge_bases SET name = coalesce(:name, name), "
            "description = coalesce(:description, description) "
            "WHERE id = :id"
        ),
        {"id": kb_id, "name": name, "description": description},
    )


async def delete(conn: AsyncConnection, *, kb_id: uuid.UUID) -> list[str]:
    """Delete a KB with its documents, chunks and members; returns the sha256 of the files its documents used."""
    shas = await conn.execute(sa.text("SELECT DISTINCT sha256 FROM documents WHERE kb_id = :id"), {"id": kb_id})
    found = [r.sha256 for r in shas]
    await documents.lock_chunk_stats(conn, kb_ids=[kb_id])
    await conn.execute(sa.text("DELETE FROM knowledge_bases WHERE id = :id"), {"id": kb_id})
    return found


async def members(conn: AsyncConnection, *, kb_id: uuid.UUID) -> list[Member]:
    """Accepted members only: a pending invitation would tell the inviter that the address has an account."""
    rows = await conn.execute(
        sa.text(
            f"SELECT {_MEMBER_COLUMNS} FROM kb_members m JOIN users u ON u.id = m.user_id "
            "WHERE m.kb_id = :kb_id AND m.accepted_at IS NOT NULL "
            "ORDER BY CASE m.role WHEN 'owner' THEN 0 WHEN 'editor' THEN 1 ELSE 2 END, lower(u.email)"
        ),
        {"kb_id": kb_id},
    )
    return [Member.from_row(r) for r in rows]


async def member(conn: AsyncConnection, *, kb_id: uuid.UUID, user_id: uuid.UUID) -> Member | None:
    """A membership, accepted or pending."""
    row = (
        await conn.execute(
            sa.text(
                f"SELECT {_MEMBER_COLUMNS} FROM kb_members m JOIN users u ON u.id = m.user_id "
                "WHERE m.kb_id = :kb_id AND m.user_id = :user_id"
            ),
            {"kb_id": kb_id, "user_id": user_id},
        )
    ).first()
    return Member.from_row(row) if row else None


async def remove_member(conn: AsyncConnection, *, kb_id: uuid.UUID, user_id: uuid.UUID) -> None:
    await conn.execute(
        sa.text("DELETE FROM kb_members WHERE kb_id = :kb_id AND user_id = :user_id"),
        {"kb_id": kb_id, "user_id": user_id},
    )


async def set_member_role(conn: AsyncConnection, *, kb_id: uuid.UUID, user_id: uuid.UUID, role: Role) -> None:
    await conn.execute(
        sa.text("UPDATE kb_members SET role = :role WHERE kb_id = :kb_id AND user_id = :user_id"),
        {"kb_id": kb_id, "user_id": user_id, "role": role.name},
    )


async def co_member_emails(conn: AsyncConnection, actor: Actor) -> list[str]:
    """The active users who accepted a membership of a KB the actor may read (owners included), the actor left out."""
    where, params = kb_filter(actor, Role.viewer, column="m.kb_id")
    rows = await conn.execute(
        sa.text(
            "SELECT DISTINCT u.email, lower(u.email) AS sort FROM kb_members m JOIN users u ON u.id = m.user_id "
            f"WHERE m.accepted_at IS NOT NULL AND u.is_active AND u.id IS DISTINCT FROM :me AND {where} ORDER BY sort"
        ),
        params | {"me": actor.user_id},
    )
    return [r.email for r in rows]
