"""Document types."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from memex.kbs.models import KbListing

# How the document page shows a document: rendered Markdown or HTML, a PDF page by page, or plain text.
TextFormat = Literal["markdown", "html", "pdf", "text"]


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


@dataclass(frozen=True, slots=True)
class Passage:
    """One stored chunk of a document, where it sits in the document and its text."""

    id: int
    ordinal: int
    heading: str
    location: str
    text: str


@dataclass(frozen=True, slots=True)
class DocumentText:
    """What the document page shows: the document, how to show it, its original text when that can be rendered,
    and its passages in reading order."""

    document: Document
    kb: KbListing
    format: TextFormat
    source: str | None
    passages: list[Passage]
