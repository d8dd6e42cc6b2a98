"""Snippets: the sentences of a passage around its best match, never a matched sentence cut in half.

The search SQL returns each passage whole, its query words wrapped in the MARK_START / MARK_END sentinels
(ts_headline with HighlightAll). Here the sentence holding the most matches is chosen and its neighbours are
added while they fit; only a matched sentence longer than the whole budget is shortened, at a clause boundary
(a comma, semicolon, colon or dash) around its first match.
"""

from __future__ import annotations

import itertools
import re

from memex.chat.sentences import split_sentences
from memex.search.store import MARK_END, MARK_START

# About three lines of a result card; a matched sentence up to MAX_SENTENCE_CHARS is shown whole even past it.
SNIPPET_CHARS = 300
MAX_SENTENCE_CHARS = 480
ELLIPSIS = "…"
_CLAUSE_END = re.compile(r"[,;:]\s+|\s+[–—-]\s+")
_SPACE = re.compile(r"\s+")


def make_snippet(text: str, *, budget: int = SNIPPET_CHARS) -> str:
    """A snippet of `text` (with match sentinels) that starts and ends at sentence boundaries, about `budget` long."""
    sentences = [_SPACE.sub(" ", s.text) for s in split_sentences(text.replace("\x00", ""))]
    if not sentences:
        return ""
    best = max(range(len(sentences)), key=lambda i: (sentences[i].count(MARK_START), -i))
    if len(_visible(sentences[best])) > MAX_SENTENCE_CHARS:
        return _clauses(sentences, best, budget)
    first = last = best
    size = len(_visible(sentences[best]))
    # Grow after the match first (what follows usually explains it), then before it.
    grew = True
    while grew:
        grew = False
        if last + 1 < len(sentences) and size + 1 + len(_visible(sentences[last + 1])) <= budget:
            last += 1
            size += 1 + len(_visible(sentences[last]))
            grew = True
        if first > 0 and size + 1 + len(_visible(sentences[first - 1])) <= budget:
            first -= 1
            size += 1 + len(_visible(sentences[first]))
            grew = True
    snippet = " ".join(sentences[first : last + 1])
    return _ellipses(snippet, cut_start=first > 0, cut_end=last < len(sentences) - 1)


def _clauses(sentences: list[str], index: int, budget: int) -> str:
    """A long sentence cut to the clauses around its first match (or, with no clause boundary, to whole words)."""
    sentence = sentences[index]
    bounds = [0, *(m.end() for m in _CLAUSE_END.finditer(sentence)), len(sentence)]
    pieces = [sentence[a:b] for a, b in itertools.pairwise(bounds) if b > a]
    anchor = next((i for i, p in enumerate(pieces) if MARK_START in p), 0)
    if len(_visible(pieces[anchor])) > budget:
        return _words(pieces[anchor], budget, cut_start=index > 0 or anchor > 0)
    first = last = anchor
    size = len(_visible(pieces[anchor]))
    while last + 1 < len(pieces) and size + len(_visible(pieces[last + 1])) <= budget:
        last += 1
        size += len(_visible(pieces[last]))
    while first > 0 and size + len(_visible(pieces[first - 1])) <= budget:
        first -= 1
        size += len(_visible(pieces[first]))
    snippet = "".join(pieces[first : last + 1]).strip()
    return _ellipses(
        snippet, cut_start=index > 0 or first > 0, cut_end=last < len(pieces) - 1 or index < len(sentences) - 1
    )


def _words(piece: str, budget: int, *, cut_start: bool) -> str:
    """The last resort, a clause with no boundary longer than the budget: whole words from its first match on."""
    start = max(0, piece.find(MARK_START))
    # Begin a few words before the match, so it is read in context.
    before = piece[:start].split(" ")
    lead = " ".join(before[-4:]) if len(before) > 4 else piece[:start]
    rest = lead + piece[start:]
    words = rest.split(" ")
    kept: list[str] = []
    size = 0
    for word in words:
        add = len(_visible(word)) + (1 if kept else 0)
        if kept and size + add > budget:
            break
        kept.append(word)
        size += add
    snippet = _balanced(" ".join(kept))
    return _ellipses(snippet, cut_start=cut_start or len(before) > 4, cut_end=len(kept) < len(words))


def _ellipses(snippet: str, *, cut_start: bool, cut_end: bool) -> str:
    return f"{ELLIPSIS} " * cut_start + snippet.strip() + f" {ELLIPSIS}" * cut_end


def _visible(text: str) -> str:
    return text.replace(MARK_START, "").replace(MARK_END, "")


def _balanced(text: str) -> str:
    """Close a mark a cut left open, so the HTML made from the snippet stays well formed."""
    if text.count(MARK_START) > text.count(MARK_END):
        return text + MARK_END
    return text
