"""Bytes to chunks: the CPU-bound half of ingestion, run in a worker thread."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath

from memex.ingest.chunking import Chunk, Chunker
from memex.ingest.models import ParsedDocument
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


def prepare(data: bytes, name: str, chunker: Chunker) -> Prepared:
    """Parse and chunk a file; raises ParseError or UnsupportedFileType with the reason."""
    parsed = parse_bytes(data, name)
    return Prepared(parsed=parsed, chunks=chunker.chunk(parsed), file_type=file_type(name), mime=mime_for(name))
