"""JSON: flattened to "key.path[0].sub: value" lines, one section per top-level key or array item."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import PurePath

from memex.errors import ParseError
from memex.ingest.detect import decode_text
from memex.ingest.models import ParsedDocument, Section

_TITLE_KEYS = ("title", "name")


def parse(data: bytes, name: str) -> ParsedDocument:
    """Parse JSON into key-path lines grouped by top-level key; title from a "title" or "name" string."""
    try:
        value = json.loads(decode_text(data))
        sections = _sections(value)
    except json.JSONDecodeError as exc:
        raise ParseError(f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from exc
    except RecursionError as exc:
        raise ParseError("JSON is nested too deeply to parse") from exc
    return ParsedDocument(title=_title(value) or PurePath(name).stem, sections=sections, metadata={})


def _sections(value: object) -> tuple[Section, ...]:
    if isinstance(value, dict):
        groups = [(str(key), item) for key, item in value.items()]
    elif isinstance(value, list):
        groups = [(f"[{index}]", item) for index, item in enumerate(value)]
    else:
        return (Section(_scalar(value), (), ""),)
    return tuple(
        Section("\n".join(f"{path}: {text}" for path, text in _flatten(item, top)), (top,), f"key {top}")
        for top, item in groups
    )


def _flatten(value: object, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        if not value:
            yield path, "{}"
        for key, item in value.items():
            yield from _flatten(item, f"{path}.{key}")
    elif isinstance(value, list):
        if not value:
            yield path, "[]"
        for index, item in enumerate(value):
            yield from _flatten(item, f"{path}[{index}]")
    else:
        yield path, _scalar(value)


def _scalar(value: object) -> str:
    # Strings read better bare; everything else keeps its JSON spelling (true, null, 1.5).
    return value if isinstance(value, str) else json.dumps(value)


def _title(value: object) -> str:
    if not isinstance(value, dict):
        return ""
    for key in _TITLE_KEYS:
        candidate = value.get(key)
        if isinstance(candidate, str) and candidate.strip():
            return candidate.strip()
    return ""
