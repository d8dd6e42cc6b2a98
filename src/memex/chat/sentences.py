"""Sentences of an answer or a passage, with the `[n]` citations each one carries.

A citation that follows a sentence's full stop ("… in 2019. [2]") belongs to that sentence, not to the next.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_CITATION = re.compile(r"\[(\d{1,3}(?:\s*[,;]\s*\d{1,3})*)\]")
# A sentence ends at . ! or ? (and any closing quote or bracket), optionally followed by citations.
_END = re.compile(r"[.!?]+[\"'”’)\]]*((?:\s*\[\d{1,3}(?:\s*[,;]\s*\d{1,3})*\])*)(?=\s+|$)")
_LIST_MARK = re.compile(r"^\s*(?:[-*+•]|\d{1,3}[.)]|#{1,6})\s+")
# Words before a full stop that do not end a sentence.
_ABBREVIATIONS = frozenset(
    "e.g i.e etc vs cf al fig figs no nos dr mr mrs ms prof st approx ca eq ref refs vol pp p inc ltd jr sr".split()
)
# A line ending with one of these ends its block (a sentence, or the lead-in of a list).
_CLOSERS = (".", "!", "?", ":", "]", '."', ".)")
_SPACE_BEFORE_PUNCTUATION = re.compile(r"\s+([.,;:!?])")
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True, slots=True)
class Sentence:
    text: str  # as written, citations included
    start: int  # offsets into the text it came from
    end: int
    citations: tuple[int, ...]

    @property
    def plain(self) -> str:
        """The sentence without its citation markers or list marks."""
        bare = " ".join(_CITATION.sub(" ", _LIST_MARK.sub("", self.text)).split())
        return _SPACE_BEFORE_PUNCTUATION.sub(r"\1", bare)


def citations_in(text: str) -> tuple[int, ...]:
    found: list[int] = []
    for match in _CITATION.finditer(text):
        for part in re.split(r"[,;]", match.group(1)):
            n = int(part)
            if n not in found:
                found.append(n)
    return tuple(found)


def _is_abbreviation(text: str, dot: int) -> bool:
    """Whether the full stop at `dot` closes an abbreviation or an initial rather than a sentence."""
    if text[dot] != ".":
        return False
    start = dot
    while start > 0 and (text[start - 1].isalnum() or text[start - 1] == "."):
        start -= 1
    word = text[start:dot].lower().strip(".")
    if word in _ABBREVIATIONS:
        return True
    # A single capital letter ("J. Smith") or a number followed by more digits ("3.5" never matches _END).
    return len(word) == 1 and text[start:dot].isupper()


def _split_line(line: str, offset: int) -> list[Sentence]:
    out: list[Sentence] = []
    start = 0
    for match in _END.finditer(line):
        if _is_abbreviation(line, match.start()):
            continue
        end = match.end()
        piece = line[start:end]
        if piece.strip():
            lead = len(piece) - len(piece.lstrip())
            out.append(_sentence(line[start + lead : end], offset + start + lead))
        start = end
    rest = line[start:]
    if rest.strip():
        lead = len(rest) - len(rest.lstrip())
        out.append(_sentence(rest.strip(), offset + start + lead))
    return out


def _sentence(text: str, start: int) -> Sentence:
    text = text.rstrip()
    return Sentence(text=text, start=start, end=start + len(text), citations=citations_in(text))


def _blocks(text: str) -> list[tuple[int, int]]:
    """Spans of text in which a line break is only wrapping: a blank line, a list item or a heading starts a new
    block, and so does a line after one that ended a sentence or introduced a list (":")."""
    spans: list[tuple[int, int]] = []
    start = end = None
    offset = 0
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        if not body.strip():
            start = None
        elif (
            start is None
            or end is None
            or _LIST_MARK.match(body)
            or text[start:end].rstrip().endswith(_CLOSERS)
            or text[start] == "#"  # a heading is a line of its own
        ):
            start = offset
            spans.append((start, offset + len(body)))
        else:
            spans[-1] = (start, offset + len(body))
        if start is not None:
            end = offset + len(body)
        offset += len(line)
    return spans


def split_sentences(text: str) -> list[Sentence]:
    """Sentences in order; a list item or a heading is a sentence of its own, a wrapped line is not."""
    out: list[Sentence] = []
    for start, end in _blocks(text):
        out.extend(_split_line(text[start:end], start))
    return out


def words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]
