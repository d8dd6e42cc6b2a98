"""Knowledge-base types."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class KnowledgeBase:
    id: uuid.UUID
    name: str
    description: str
    owner_id: uuid.UUID | None
    is_personal: bool
    created_at: datetime
    # The caller's role on it, when read through an actor.
    role: str | None = None
    # What its owner is called where it is shown (their email's local part); None for a KB made by the local CLI.
    owner_name: str | None = None

    @classmethod
    def from_row(cls, row: Any) -> KnowledgeBase:
        m = row._mapping
        return cls(
            id=m["id"],
            name=m["name"],
            description=m["description"],
            owner_id=m["owner_id"],
            is_personal=m["is_personal"],
            created_at=m["created_at"],
            role=m.get("role"),
            owner_name=m.get("owner_name"),
        )


@dataclass(frozen=True, slots=True)
class KbListing:
    """A KB as the caller sees it in a list: with its role and how many documents it holds."""

    kb: KnowledgeBase
    document_count: int


@dataclass(frozen=True, slots=True)
class KbOwnership:
    """A KB as the admin view lists it: with its real owner, and counts instead of contents."""

    kb: KnowledgeBase
    owner_email: str | None
    document_count: int
    member_count: int


@dataclass(frozen=True, slots=True)
class Invitation:
    """A KB shared with the user that they have not accepted yet (kb.role is the role offered)."""

    kb: KnowledgeBase
    invited_at: datetime


@dataclass(frozen=True, slots=True)
class Member:
    user_id: uuid.UUID
    email: str
    role: str
    created_at: datetime
    # None while the membership is an invitation the user has not accepted.
    accepted_at: datetime | None = None

    @classmethod
    def from_row(cls, row: Any) -> Member:
        return cls(
            user_id=row.user_id, email=row.email, role=row.role, created_at=row.created_at, accepted_at=row.accepted_at
        )
