"""Bytes to chunks: the CPU-bound half of ingestion, run in the parsing sandbox (see `sandbox.py`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from memex.errors import ParseError
from memex.ingest.chunking import Chunk, Chunker
from memex.ingest.models import ParsedDocument, Section
from memex.ingest.parsers import mime_for, parse_bytes


@dataclass(frozen=True, slots=True)
class Prepared:
    parsed: ParsedDocument
    chunks: list[Chunk]
    file_type: str
    mime: str


def file_type(name: str) -> str:
    """The lower-case extension without its dot ("md", "pdf"), used for filtering."""
    return PurePath(name).suffix.lower().lstrip(".")


def prepare(data: bytes, name: str, chunker: Chunker, *, max_chars: int | None = None) -> Prepared:
    """Parse and chunk a file; raises ParseError or UnsupportedFileType with the reason."""
    parsed = parse_bytes(data, name)
    if max_chars is not None:
        chars = sum(len(section.text) for section in parsed.sections)
        if chars > max_chars:
            raise ParseError(
                f"the file holds {chars:,} characters of text; the limit is {max_chars:,} "
                "(MEMEX_MAX_DOCUMENT_CHARS): split it into smaller files"
            )
    return Prepared(parsed=parsed, chunks=chunker.chunk(parsed), file_type=file_type(name), mime=mime_for(name))


def to_json(prepared: Prepared) -> bytes:
    """A Prepared as JSON: what the sandbox sends back (never a pickle, which could run code in the server)."""
    parsed = prepared.parsed
    return json.dumps(
        {
            "title": parsed.title,
            "metadata": parsed.metadata,
            "sections": [[s.text, list(s.heading_path), s.location] for s in parsed.sections],
            "chunks": [[c.ordinal, c.heading, c.context, c.location, c.text, c.token_count] for c in prepared.chunks],
            "file_type": prepared.file_type,
            "mime": prepared.mime,
        },
        default=str,
    ).encode()


def from_json(raw: bytes | dict[str, Any]) -> Prepared:
    """The Prepared that `to_json` wrote."""
    value = json.loads(raw) if isinstance(raw, bytes) else raw
    sections = tuple(Section(text, tuple(path), location) for text, path, location in value["sections"])
    return Prepared(
        parsed=ParsedDocument(title=value["title"], sections=sections, metadata=dict(value["metadata"])),
        chunks=[
            Chunk(ordinal=o, heading=h, context=c, location=loc, text=t, token_count=n)
            for o, h, c, loc, t, n in value["chunks"]
        ],
        file_type=value["file_type"],
        mime=value["mime"],
    )
