"""Answers without a language model: the passages' sentences that answer the question best, each cited.

The answer leads with the best sentence of the search's first passage: hybrid search, which weighs meaning and
words over whole passages, picks the most relevant source better than any one sentence's words do. Sentences are
ranked by how much of the question they hold: its content words, each weighted by how few of the candidate
sentences hold it (a word every sentence has tells them apart no better than none), with a bonus for the
passage's rank; at most two come from one passage. No model runs, so the answer costs little more than the search.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from memex.chat.grounding import PreparedPassage, content_words

NO_MODEL_INTRO = "No language model is configured, so here are the sentences from your documents that answer this best:"
FALLBACK_INTRO = (
    "The language model could not answer, so here are the sentences from your documents that answer this best:"
)
SENTENCES = 3
PER_PASSAGE = 2
# Added to a sentence's score (the weighted share of the question it holds) for coming from the search's first,
# second… passage.
RANK_BONUS = (0.1, 0.05, 0.025)
_MIN_CHARS = 30
# Signs of a command line rather than prose: long options, a shell prompt. (Narrow on purpose: prose has
# semicolons, quotes and equals signs too.)
_CODE = re.compile(r"(^|\s)--[a-z]|^\$ ")


@dataclass(frozen=True, slots=True)
class Pick:
    n: int
    sentence: str
    score: float


def pick_sentences(question: str, prepared: Mapping[int, PreparedPassage], *, count: int = SENTENCES) -> list[Pick]:
    """The best sentences, best first."""
    wanted = content_words(question)
    candidates: list[tuple[int, int, str, set[str]]] = []
    for rank, n in enumerate(sorted(prepared)):
        p = prepared[n]
        for sentence in p.sentences:
            # A list's lead-in ("…do this:") says nothing on its own, and a command line is not an answer.
            if (len(sentence) >= _MIN_CHARS and not sentence.endswith(":") and not _CODE.search(sentence)) or len(
                p.sentences
            ) == 1:
                candidates.append((rank, n, sentence, content_words(sentence) & wanted))
    holding = Counter(w for *_, found in candidates for w in found)
    weight = {w: math.log(1 + len(candidates) / k) for w, k in holding.items()}
    total = sum(weight.values()) or 1.0
    scored = [
        Pick(n=n, sentence=sentence, score=sum(weight[w] for w in found) / total + _bonus(rank))
        for rank, n, sentence, found in candidates
    ]
    scored.sort(key=lambda c: c.score, reverse=True)  # stable: ties keep the search's order
    lead = next((c for c in scored if c.n == min(prepared, default=None)), None)
    picked: list[Pick] = [lead] if lead is not None else []
    taken: dict[int, int] = {lead.n: 1} if lead is not None else {}
    for c in scored:
        if len(picked) >= count:
            break
        if c is lead or taken.get(c.n, 0) >= PER_PASSAGE:
            continue
        picked.append(c)
        taken[c.n] = taken.get(c.n, 0) + 1
    return picked[:count]


def _bonus(rank: int) -> float:
    return RANK_BONUS[rank] if rank < len(RANK_BONUS) else 0.0


def compose(picks: list[Pick], *, intro: str) -> str:
    """The answer's text: the intro line, then one cited sentence per list item."""
    lines = [intro, ""]
    for p in picks:
        sentence = " ".join(p.sentence.split())
        lines.append(f"- {sentence} [{p.n}]")
    return "\n".join(lines)
