"""Answers without a language model: the passages' sentences that answer the question best, each cited.

Sentences are ranked by their embedding's similarity to the question, with a small bonus for the passage's rank
in the hybrid search (which weighs exact words the embedding misses), at most two from one passage.
"""

from __future__ import annotations

from dataclasses import dataclass

from memex.chat.grounding import PreparedPassage
from memex.embeddings.base import Vectors

NO_MODEL_INTRO = "No language model is configured, so here are the sentences from your documents that answer this best:"
FALLBACK_INTRO = (
    "The language model could not answer, so here are the sentences from your documents that answer this best:"
)
SENTENCES = 3
PER_PASSAGE = 2
# Added to a sentence's similarity for coming from the search's first, second… passage.
RANK_BONUS = (0.06, 0.03, 0.015)
_MIN_CHARS = 30


@dataclass(frozen=True, slots=True)
class Pick:
    n: int
    sentence: str
    score: float


def pick_sentences(question: Vectors, prepared: dict[int, PreparedPassage], *, count: int = SENTENCES) -> list[Pick]:
    """The best sentences, best first."""
    query = question.reshape(-1)
    candidates: list[Pick] = []
    for rank, n in enumerate(sorted(prepared)):
        p = prepared[n]
        bonus = RANK_BONUS[rank] if rank < len(RANK_BONUS) else 0.0
        sims = p.vectors @ query
        for sentence, sim in zip(p.sentences, sims, strict=True):
            if len(sentence) >= _MIN_CHARS or len(p.sentences) == 1:
                candidates.append(Pick(n=n, sentence=sentence, score=float(sim) + bonus))
    candidates.sort(key=lambda c: c.score, reverse=True)
    picked: list[Pick] = []
    taken: dict[int, int] = {}
    for c in candidates:
        if taken.get(c.n, 0) >= PER_PASSAGE:
            continue
        picked.append(c)
        taken[c.n] = taken.get(c.n, 0) + 1
        if len(picked) == count:
            break
    return picked


def compose(picks: list[Pick], *, intro: str) -> str:
    """The answer's text: the intro line, then one cited sentence per list item."""
    lines = [intro, ""]
    for p in picks:
        sentence = " ".join(p.sentence.split())
        lines.append(f"- {sentence} [{p.n}]")
    return "\n".join(lines)
