"""The search box's little language: `file:"*.md"`, `+"must have"`, `-"must not"`, and free text."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_TOKEN = re.compile(r'(?P<op>file:|\+|-)(?:"(?P<quoted>[^"]+)"|(?P<bare>[^\s"]+))')


@dataclass(frozen=True, slots=True)
class ParsedQuery:
    text: str
    file_globs: tuple[str, ...] = ()
    required: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()
    raw: str = field(default="", compare=False)

    @property
    def search_text(self) -> str:
        """What is embedded and matched: the free text, or the required words when there is none."""
        return self.text or " ".join(self.required)


def parse_query(raw: str) -> ParsedQuery:
    """Split operators from free text; a `-` or `+` inside a word (e.g. "e-mail") is left alone."""
    globs: list[str] = []
    required: list[str] = []
    excluded: list[str] = []
    kept: list[str] = []
    pos = 0
    for match in _TOKEN.finditer(raw):
        if match.start() > 0 and not raw[match.start() - 1].isspace():
            continue
        value = (match.group("quoted") or match.group("bare") or "").strip()
        kept.append(raw[pos : match.start()])
        pos = match.end()
        if not value:
            continue
        op = match.group("op")
        if op == "file:":
            globs.append(value)
        elif op == "+":
            required.append(value)
            kept.append(f" {value} ")  # a required word is also something to rank by
        else:
            excluded.append(value)
    kept.append(raw[pos:])
    text = " ".join("".join(kept).split())
    return ParsedQuery(text=text, file_globs=tuple(globs), required=tuple(required), excluded=tuple(excluded), raw=raw)


def glob_to_regex(glob: str) -> str:
    """A POSIX regex matching paths that end with `glob` (`*` and `?` stay within one path segment)."""
    out: list[str] = []
    for ch in glob:
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        else:
            out.append(re.escape(ch))
    return "(^|/)" + "".join(out) + "$"


def word_regex(word: str) -> str:
    """A case-insensitive Postgres regex for `word` (or phrase) as whole words, Unicode-aware."""
    return r"\m" + r"\s+".join(re.escape(part) for part in word.split()) + r"\M"
