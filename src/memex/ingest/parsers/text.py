"""Plain text: paragraphs separated by blank lines, grouped into sections of a bounded size."""

from __future__ import annotations

from pathlib import PurePath

from memex.ingest.detect import decode_text
from memex.ingest.models import ParsedDocument, Section

# Plain text has no headings to split on; grouping paragraphs keeps sections close to chunk size.
SECTION_CHARS = 2000
_MAX_TITLE_CHARS = 120


def parse(data: bytes, name: str) -> ParsedDocument:
    """Parse plain text: title from a short first line, sections of whole paragraphs."""
    lines = decode_text(data).replace("\r\n", "\n").replace("\r", "\n").split("\n")
    paragraphs = _paragraphs(lines)
    first_line = paragraphs[0][1].split("\n", 1)[0].strip() if paragraphs else ""
    title = first_line if 0 < len(first_line) < _MAX_TITLE_CHARS else PurePath(name).stem
    return ParsedDocument(title=title, sections=_group(paragraphs), metadata={})


def _paragraphs(lines: list[str]) -> list[tuple[int, str]]:
    """(1-based start line, text) of each run of non-blank lines."""
    found: list[tuple[int, str]] = []
    start = 0
    run: list[str] = []
    for number, line in enumerate(lines, start=1):
        if line.strip():
            if not run:
                start = number
            run.append(line.rstrip())
        elif run:
            found.append((start, "\n".join(run)))
            run = []
    if run:
        found.append((start, "\n".join(run)))
    return found


def _group(paragraphs: list[tuple[int, str]]) -> tuple[Section, ...]:
    sections: list[Section] = []
    batch: list[str] = []
    batch_start = 0
    size = 0
    for start, paragraph in paragraphs:
        if batch and size + len(paragraph) > SECTION_CHARS:
            sections.append(Section("\n\n".join(batch), (), f"line {batch_start}"))
            batch, size = [], 0
        if not batch:
            batch_start = start
        batch.append(paragraph)
        size += len(paragraph) + 2
    if batch:
        sections.append(Section("\n\n".join(batch), (), f"line {batch_start}"))
    return tuple(sections)
