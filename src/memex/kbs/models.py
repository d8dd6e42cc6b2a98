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
        )
