"""The only code that decides what an actor may read or write, expressed as SQL every store joins.

Roles rank viewer < editor < owner. A user reaches the KBs they own and those shared with them once they accepted
the invitation. Admins act as owners of every KB except other users' personal ones, which stay private unless
shared; the local system actor (the CLI working directly on the database) sees everything. An API key may narrow a
user to some KBs and scopes; such a restricted key cannot manage the account (keys, invitations).
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

    @property
    def can_read(self) -> bool:
        """Whether the actor may read what it reaches (a write-only key may not)."""
        return "read" in self.scopes or "admin" in self.scopes

    @property
    def is_restricted(self) -> bool:
        """An API key narrower than its user: limited to some KBs, or without every scope the user could hold."""
        if self.api_key_id is None:
            return False
        full = "admin" in self.scopes or (not self.is_admin and {"read", "write"} <= self.scopes)
        return self.kb_ids is not None or not full

    def require_unrestricted(self, what: str) -> None:
        """Account management needs a session or a key with all of its user's rights."""
        if self.is_restricted:
            raise PermissionDenied(
                f"this API key is restricted (to some knowledge bases or scopes) and cannot {what}: "
                "use a session or a key with all of your account's scopes"
            )


def kb_filter(actor: Actor, role: Role = Role.viewer, *, column: str = "kb.id") -> tuple[str, dict[str, object]]:
    """A SQL condition on `column` (a KB id) true for the KBs `actor` holds at least `role` on, and its parameters."""
    params: dict[str, object] = {}
    conditions: list[str] = []
    if not actor.is_system:
        params["access_user_id"] = actor.user_id
        params["access_roles"] = [r.name for r in Role if r >= role]
        # Pending invitations (accepted_at NULL) count for nothing; other users' personal KBs stay private to admins.
        admin_reach = "UNION ALL SELECT k.id FROM knowledge_bases k WHERE NOT k.is_personal " if actor.is_admin else ""
        conditions.append(
            f"{column} IN (SELECT k.id FROM knowledge_bases k WHERE k.owner_id = :access_user_id "
            "UNION ALL SELECT m.kb_id FROM kb_members m WHERE m.user_id = :access_user_id "
            f"AND m.accepted_at IS NOT NULL AND m.role = ANY(:access_roles) {admin_reach})"
        )
    if actor.kb_ids is not None:
        params["access_kb_ids"] = list(actor.kb_ids)
        conditions.append(f"{column} = ANY(:access_kb_ids)")
    return (" AND ".join(conditions) or "TRUE"), params


def scope_for(role: Role) -> str:
    return "read" if role is Role.viewer else "write"
