"""Search request and result types."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

Mode = Literal["hybrid", "vector", "keyword"]
MODES: tuple[Mode, ...] = ("hybrid", "vector", "keyword")
MAX_LIMIT = 200

# The web UI calls vector search "semantic"; the API, CLI and MCP accept that word too.
MODE_ALIASES: dict[str, Mode] = {"semantic": "vector"}


def mode_named(name: str) -> str:
    """The mode a name stands for (`semantic` is `vector`); unknown names pass through for the service to refuse."""
    return MODE_ALIASES.get(name.strip().lower(), name)


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
    # Results to skip, for paging: the order is stable for the same query, filters and limit.
    offset: int = 0
    # Whether passages below the relevance cut-off (MEMEX_SEARCH_MIN_SIMILARITY) are left out.
    cutoff: bool = True
    document_id: uuid.UUID | None = None


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
            "chunk_id": self.chunk_id,
        }


@dataclass(frozen=True, slots=True)
class SearchPage:
    """One page of results, how many passages the relevance cut-off left out, and where the next page starts."""

    results: list[SearchResult]
    hidden: int = 0
    next_offset: int | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "results": [r.as_dict() for r in self.results],
            "hidden": self.hidden,
            "next_offset": self.next_offset,
        }
