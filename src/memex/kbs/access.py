"""The only code that decides what an actor may read or write, expressed as SQL every store joins.

Roles rank viewer < editor < owner. Admins act as owners everywhere; the local system actor (the CLI
working directly on the database) sees everything. An API key may narrow a user to some KBs and scopes.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import IntEnum

from memex.errors import PermissionDenied


class Role(IntEnum):
    viewer = 1
    editor = 2
    owner = 3


SCOPES = ("read", "write", "admin")


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is asking: a user (through a session or an API key) or the local system."""

    user_id: uuid.UUID | None
    is_admin: bool = False
    scopes: frozenset[str] = frozenset(SCOPES)
    kb_ids: frozenset[uuid.UUID] | None = None
    api_key_id: uuid.UUID | None = None

    @classmethod
    def system(cls) -> Actor:
        return cls(user_id=None, is_admin=True)

    @property
    def is_system(self) -> bool:
        return self.user_id is None

    def require_scope(self, scope: str) -> None:
        if scope not in self.scopes and "admin" not in self.scopes:
            raise PermissionDenied(f"this API key lacks the '{scope}' scope")


def kb_filter(actor: Actor, role: Role = Role.viewer, *, column: str = "kb.id") -> tuple[str, dict[str, object]]:
    """A SQL condition on `column` (a KB id) true for the KBs `actor` holds at least `role` on, and its parameters."""
    params: dict[str, object] = {}
    conditions: list[str] = []
    if not (actor.is_system or actor.is_admin):
        params["access_user_id"] = actor.user_id
        params["access_roles"] = [r.name for r in Role if r >= role]
        conditions.append(
            f"{column} IN (SELECT m.kb_id FROM kb_members m "
            "WHERE m.user_id = :access_user_id AND m.role = ANY(:access_roles))"
        )
    if actor.kb_ids is not None:
        params["access_kb_ids"] = list(actor.kb_ids)
        conditions.append(f"{column} = ANY(:access_kb_ids)")
    return (" AND ".join(conditions) or "TRUE"), params


def scope_for(role: Role) -> str:
    return "read" if role is Role.viewer else "write"
