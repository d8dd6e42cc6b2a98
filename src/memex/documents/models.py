"""Document types."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Document:
    id: uuid.UUID
    kb_id: uuid.UUID
    source_path: str
    title: str
    mime: str
    file_type: str
    sha256: str
    size: int
    status: str
    error: str | None
    chunk_count: int
    modified_at: datetime | None
    created_at: datetime
    updated_at: datetime
    indexed_at: datetime | None
    progress_done: int | None
    progress_total: int | None
    retryable: bool

    @classmethod
    def from_row(cls, row: Any) -> Document:
        return cls(**{name: row._mapping[name] for name in cls.__slots__})


@dataclass(frozen=True, slots=True)
class StoredFile:
    """What the store knows of a file already in a KB: enough to decide unchanged / changed / renamed."""

    id: uuid.UUID
    source_path: str
    sha256: str
    status: str
