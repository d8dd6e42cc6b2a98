"""All SQL about knowledge bases and their members."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from memex.documents import store as documents
from memex.kbs.access import Actor, Role, kb_filter
from memex.kbs.models import KnowledgeBase, Member

_COLUMNS = "kb.id, kb.name, kb.description, kb.owner_id, kb.is_personal, kb.created_at"


def _role_sql(actor: Actor) -> tuple[str, dict[str, object]]:
    """The actor's role on each KB, as a SQL expression (admins and the system are owners)."""
    if actor.is_system or actor.is_admin:
        return "'owner'", {}
    return "(SELECT m.role FROM kb_members m WHERE m.kb_id = kb.id AND m.user_id = :role_user_id)", {
        "role_user_id": actor.user_id
    }


async def list_for(conn: AsyncConnection, actor: Actor, role: Role = Role.viewer) -> list[KnowledgeBase]:
    """KBs the actor holds at least `role` on, by name."""
    where, params = kb_filter(actor, role)
    role_sql, role_params = _role_sql(actor)
    rows = await conn.execute(
        sa.text(f"SELECT {_COLUMNS}, {role_sql} AS role FROM knowledge_bases kb WHERE {where} ORDER BY kb.name, kb.id"),
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
            sa.text(f"SELECT {_COLUMNS}, {role_sql} AS role FROM knowledge_bases kb WHERE kb.id = :kb_id AND {where}"),
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
            f"SELECT {_COLUMNS}, {role_sql} AS role FROM knowledge_bases kb WHERE kb.name = :name AND {where} "
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
        await add_member(conn, kb_id=row.id, user_id=owner_id, role=Role.owner)
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


async def add_member(conn: AsyncConnection, *, kb_id: uuid.UUID, user_id: uuid.UUID, role: Role) -> None:
    await conn.execute(
        sa.text(
            "INSERT INTO kb_members (kb_id, user_id, role, accepted_at) VALUES (:kb_id, :user_id, :role, now()) "
            "ON CONFLICT (kb_id, user_id) DO UPDATE SET role = EXCLUDED.role"
        ),
        {"kb_id": kb_id, "user_id": user_id, "role": role.name},
    )


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
    await documents.lock_chunk_stats(conn)
    await conn.execute(sa.text("DELETE FROM knowledge_bases WHERE id = :id"), {"id": kb_id})
    return found


async def members(conn: AsyncConnection, *, kb_id: uuid.UUID) -> list[Member]:
    rows = await conn.execute(
        sa.text(
            "SELECT m.user_id, u.email, m.role, m.created_at FROM kb_members m JOIN users u ON u.id = m.user_id "
            "WHERE m.kb_id = :kb_id "
            "ORDER BY CASE m.role WHEN 'owner' THEN 0 WHEN 'editor' THEN 1 ELSE 2 END, lower(u.email)"
        ),
        {"kb_id": kb_id},
    )
    return [Member.from_row(r) for r in rows]


async def member(conn: AsyncConnection, *, kb_id: uuid.UUID, user_id: uuid.UUID) -> Member | None:
    row = (
        await conn.execute(
            sa.text(
                "SELECT m.user_id, u.email, m.role, m.created_at FROM kb_members m JOIN users u ON u.id = m.user_id "
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
