"""Search request and result types."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

Mode = Literal["hybrid", "vector", "keyword"]
MODES: tuple[Mode, ...] = ("hybrid", "vector", "keyword")
MAX_LIMIT = 200


@dataclass(frozen=True, slots=True)
class SearchFilters:
    kb_ids: tuple[uuid.UUID, ...] = ()
    file_types: tuple[str, ...] = ()
    path_prefix: str | None = None
    modified_after: datetime | None = None
    modified_before: datetime | None = None


@dataclass(frozen=True, slots=True)
class SearchRequest:
    query: str
    limit: int = 10
    mode: Mode = "hybrid"
    filters: SearchFilters = field(default_factory=SearchFilters)
    exact: bool = False
    # Whether `file:`, `+word` and `-word` are operators; chat passes a person's question as plain text.
    operators: bool = True


@dataclass(frozen=True, slots=True)
class SearchResult:
    chunk_id: int
    document_id: uuid.UUID
    kb: uuid.UUID
    kb_name: str
    title: str
    path: str
    heading: str
    location: str
    text: str
    snippet: str
    score: float

    def as_dict(self) -> dict[str, object]:
        return {
            "document_id": str(self.document_id),
            "kb": str(self.kb),
            "kb_name": self.kb_name,
            "title": self.title,
            "path": self.path,
            "heading": self.heading,
            "location": self.location,
            "text": self.text,
            "snippet": self.snippet,
            "score": self.score,
        }
