"""Markdown: YAML front matter, then heading-aware sections (markdown-it-py, CommonMark plus tables)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from pathlib import PurePath

import yaml
from markdown_it import MarkdownIt
from markdown_it.token import Token

from memex.errors import ParseError
from memex.ingest.detect import decode_text
from memex.ingest.models import ParsedDocument
from memex.ingest.parsers.outline import Outline

_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)^(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.DOTALL | re.MULTILINE)
# YAML aliases can make a few bytes expand into millions of values ("billion laughs"); cap what we copy.
_MAX_METADATA_VALUES = 10_000


def parse(data: bytes, name: str) -> ParsedDocument:
    """Parse Markdown into sections under their heading chains, with front matter as metadata."""
    source = decode_text(data).replace("\r\n", "\n")
    metadata, body, line_offset = _split_front_matter(source)
    md = MarkdownIt("commonmark").enable(["table", "strikethrough"])
    outline = Outline()
    collector = _BlockCollector(outline, line_offset=line_offset)
    collector.feed(md.parse(body))
    front_title = metadata.get("title")
    if isinstance(front_title, str) and front_title.strip():
        title = front_title.strip()
    else:
        title = collector.first_h1 or PurePath(name).stem
    return ParsedDocument(title=title, sections=outline.sections(), metadata=metadata)


def _split_front_matter(source: str) -> tuple[dict[str, object], str, int]:
    match = _FRONT_MATTER.match(source)
    if match is None:
        return {}, source, 0
    try:
        loaded = yaml.safe_load(match.group(1))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 2}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ParseError(f"invalid YAML front matter{where}: {problem}") from exc
    if loaded is not None and not isinstance(loaded, dict):
        # Not a mapping: this was a thematic break followed by prose, not front matter.
        return {}, source, 0
    budget = [_MAX_METADATA_VALUES]
    metadata = {str(key): _json_safe(value, budget=budget) for key, value in (loaded or {}).items()}
    consumed = match.group(0)
    return metadata, source[len(consumed) :], consumed.count("\n")


def _json_safe(value: object, *, budget: list[int]) -> object:
    # Metadata ends up in JSON columns and API responses, so dates become ISO strings and odd keys strings.
    budget[0] -= 1
    if budget[0] < 0:
        raise ParseError("YAML front matter is too large")
    if isinstance(value, dict):
        return {str(k): _json_safe(v, budget=budget) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_json_safe(v, budget=budget) for v in value]
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


class _BlockCollector:
    """Turns markdown-it's token stream into the headings and text blocks of an Outline."""

    def __init__(self, outline: Outline, *, line_offset: int) -> None:
        self.outline = outline
        self.first_h1: str | None = None
        self._line_offset = line_offset
        self._list_depth = 0
        self._list_lines: list[str] = []
        self._list_start = ""
        self._item_starts = False
        self._rows: list[str] = []
        self._cells: list[str] = []
        self._table_start = ""
        self._in_cell = False

    def feed(self, tokens: Sequence[Token]) -> None:
        """Consume every token of a parsed document."""
        stream = iter(tokens)
        for token in stream:
            where = f"line {token.map[0] + 1 + self._line_offset}" if token.map else ""
            if token.type == "heading_open":
                self._heading(token, next(stream), where)
                next(stream)  # heading_close
            elif token.type == "inline":
                self._inline(_inline_text(token), where)
            elif token.type in ("fence", "code_block", "html_block"):
                self._block(token.content.rstrip("\n"), where)
            else:
                self._structure(token.type, where)

    def _heading(self, token: Token, inline: Token, where: str) -> None:
        text = _inline_text(inline).strip()
        level = int(token.tag[1:])
        if level == 1 and self.first_h1 is None and text:
            self.first_h1 = text
        self.outline.heading(level, text, where)

    def _inline(self, text: str, where: str) -> None:
        if self._in_cell:
            self._cells.append(text.strip())
        elif self._list_depth:
            # The first paragraph of an item carries the bullet; later ones are indented under it.
            indent = "  " * (self._list_depth - 1)
            self._list_lines.append(f"{indent}- {text}" if self._item_starts else f"{indent}  {text}")
            self._item_starts = False
        else:
            self.outline.add(text, where)

    def _block(self, text: str, where: str) -> None:
        if self._list_depth:
            self._list_lines.append(text)
        else:
            self.outline.add(text, where)

    def _structure(self, kind: str, where: str) -> None:
        if kind in ("bullet_list_open", "ordered_list_open"):
            if self._list_depth == 0:
                self._list_lines, self._list_start = [], where
            self._list_depth += 1
        elif kind in ("bullet_list_close", "ordered_list_close"):
            self._list_depth -= 1
            if self._list_depth == 0:
                self.outline.add("\n".join(self._list_lines), self._list_start)
        elif kind == "list_item_open":
            self._item_starts = True
        elif kind == "table_open":
            self._rows, self._table_start = [], where
        elif kind == "table_close":
            self._block("\n".join(self._rows), self._table_start)
        elif kind == "tr_open":
            self._cells = []
        elif kind == "tr_close":
            self._rows.append(" | ".join(self._cells))
        elif kind in ("th_open", "td_open", "th_close", "td_close"):
            self._in_cell = kind.endswith("_open")


def _inline_text(token: Token) -> str:
    parts: list[str] = []
    for child in token.children or ():
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append("\n")
        elif child.type == "image":
            parts.append(child.content)
    return "".join(parts)
