"""The grounding check: is each sentence of an answer supported by the passages it cites?

A sentence is compared with every sentence of each passage it cites, with the local embedder (meaning), and
with the passages' words (the facts themselves: names, numbers, terms). Its score mixes the best semantic match
with the share of its content words found in the cited passages; below `SUPPORT_THRESHOLD` it is marked
unsupported. A sentence that cites nothing has no score (`supported: null`). The passages' sentences are
embedded while the model is still answering (`prepare`), so the check adds only the answer's own sentences.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from memex.chat.models import CheckedSentence, Passage
from memex.chat.sentences import Sentence, split_sentences, words
from memex.embeddings.base import Embedder, Vectors

# Chosen with benchmarks/grounding.py on SciFact claims (odd query ids; the even ones held out): 98 % of
# claims against a random abstract are flagged, 6 % against a relevant one. Meaning carries most of the weight,
# so a model's paraphrase is not flagged for its wording; the words still count for names and numbers.
SEMANTIC_WEIGHT = 0.8
SUPPORT_THRESHOLD = 0.38
# Passage sentences shorter than this many characters are joined to the next (headings, list stubs).
_MIN_SENTENCE_CHARS = 25
_MAX_PASSAGE_SENTENCES = 40

_STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have having he
    her here hers herself him himself his how i if in into is it its itself just may me might more most must my
    myself no nor not now of off on once only or other our ours ourselves out over own same shall she should so
    some such than that the their theirs them themselves then there these they this those through to too under
    until up very was we were what when where which while who whom why will with would you your yours yourself
    yourselves one two many much per via within without upon among whether either neither yet however thus
    therefore according based using used use""".split()
)
# What an assistant says about the conversation itself, not about the world.
_NOT_FACTUAL = re.compile(
    r"not (?:in|found in|covered by|mentioned in) (?:your|the) (?:documents|sources)|^no language model|"
    r"hope (?:this|that) helps|let me know|^here (?:is|are)\b|^(?:i|we) (?:found|could not find|did not find)",
    re.IGNORECASE,
)


def content_words(text: str) -> set[str]:
    """Lower-cased words that carry meaning, with a light plural strip, numbers kept."""
    out = set()
    for w in words(text):
        if w in _STOPWORDS or (len(w) < 3 and not w.isdigit()):
            continue
        if len(w) > 4 and w.endswith("s") and not w.endswith("ss"):
            w = w[:-1]
        out.add(w)
    return out


def is_factual(sentence: Sentence) -> bool:
    """Whether an uncited sentence states something a source should back (not a heading, a question, a hedge)."""
    plain = sentence.plain
    if plain.endswith((":", "?")) or _NOT_FACTUAL.search(plain):
        return False
    return len(content_words(plain)) >= 2


@dataclass(frozen=True, slots=True)
class PreparedPassage:
    passage: Passage
    sentences: tuple[str, ...]
    vectors: Vectors
    words: frozenset[str]


def passage_sentences(text: str) -> list[str]:
    """A passage's sentences for matching, short fragments joined to their neighbour."""
    out: list[str] = []
    pending = ""
    for s in split_sentences(text):
        piece = f"{pending} {s.plain}".strip()
        if len(piece) < _MIN_SENTENCE_CHARS:
            pending = piece
            continue
        out.append(piece)
        pending = ""
    if pending:
        if out:
            out[-1] = f"{out[-1]} {pending}"
        else:
            out.append(pending)
    return out[:_MAX_PASSAGE_SENTENCES] or [text[:500]]


class SentenceVectors:
    """An LRU of passage-sentence embeddings by chunk id: a passage cited again is not embedded again."""

    def __init__(self, embedder: Embedder, *, size: int = 2048) -> None:
        self._embedder = embedder
        self._size = size
        self._cache: OrderedDict[tuple[int, str], PreparedPassage] = OrderedDict()
        self._lock = threading.Lock()

    def prepare(self, passages: Sequence[Passage]) -> dict[int, PreparedPassage]:
        """Split and embed the passages' sentences (blocking: run it in a thread); keyed by `n`."""
        out: dict[int, PreparedPassage] = {}
        missing: list[tuple[Passage, list[str]]] = []
        with self._lock:
            for p in passages:
                hit = self._cache.get((p.chunk_id, p.text))
                if hit is not None:
                    self._cache.move_to_end((p.chunk_id, p.text))
                    out[p.n] = PreparedPassage(passage=p, sentences=hit.sentences, vectors=hit.vectors, words=hit.words)
                else:
                    missing.append((p, passage_sentences(p.text)))
        if missing:
            flat = [s for _, sents in missing for s in sents]
            vectors = self._embedder.embed_documents(flat)
            at = 0
            with self._lock:
                for p, sents in missing:
                    prepared = PreparedPassage(
                        passage=p,
                        sentences=tuple(sents),
                        vectors=vectors[at : at + len(sents)],
                        words=frozenset(content_words(p.text)),
                    )
                    at += len(sents)
                    out[p.n] = prepared
                    self._cache[(p.chunk_id, p.text)] = prepared
                    while len(self._cache) > self._size:
                        self._cache.popitem(last=False)
        return out


@dataclass(frozen=True, slots=True)
class Support:
    """How well the cited passages back one sentence."""

    semantic: float  # cosine similarity of its best-matching passage sentence (0 when negative)
    overlap: float  # share of its content words found in the passages

    def score(self, weight: float = SEMANTIC_WEIGHT) -> float:
        return weight * self.semantic + (1 - weight) * self.overlap


def support(vector: Vectors, sentence: str, passages: Sequence[PreparedPassage]) -> tuple[Support, list[int]]:
    """How well `passages` back the sentence whose embedding is `vector`; also each passage's best sentence."""
    semantic = 0.0
    best: list[int] = []
    for p in passages:
        sims = p.vectors @ vector
        j = int(np.argmax(sims))
        best.append(j)
        semantic = max(semantic, float(sims[j]))
    mine = content_words(sentence)
    found = sum(1 for w in mine if any(w in p.words for p in passages))
    return Support(semantic=semantic, overlap=found / len(mine) if mine else 1.0), best


@dataclass(frozen=True, slots=True)
class Grounded:
    sentences: tuple[CheckedSentence, ...]
    quotes: dict[int, str]  # for each cited passage, its sentence that best matches what cited it


def check(
    embedder: Embedder,
    answer: str,
    prepared: dict[int, PreparedPassage],
    *,
    threshold: float = SUPPORT_THRESHOLD,
    weight: float = SEMANTIC_WEIGHT,
) -> Grounded:
    """Score every sentence of the answer against the passages it cites (blocking: run it in a thread)."""
    sentences = split_sentences(answer)
    cited = [s for s in sentences if s.citations]
    vectors = embedder.embed_documents([s.plain for s in cited]) if cited else np.zeros((0, 1), dtype=np.float32)
    best_quote: dict[int, tuple[float, str]] = {}
    scored: dict[int, tuple[bool, float]] = {}
    for s, vector in zip(cited, vectors, strict=True):
        known = [prepared[n] for n in s.citations if n in prepared]
        if not known:
            scored[id(s)] = (False, 0.0)
            continue
        found, best = support(vector, s.plain, known)
        for p, j in zip(known, best, strict=True):
            similarity = float(p.vectors[j] @ vector)
            if similarity > best_quote.get(p.passage.n, (-2.0, ""))[0]:
                best_quote[p.passage.n] = (similarity, p.sentences[j])
        score = found.score(weight)
        scored[id(s)] = (score >= threshold, round(score, 4))
    checked = []
    for s in sentences:
        place = {"start": s.start, "end": s.end}
        if s.citations:
            supported, score = scored[id(s)]
            checked.append(CheckedSentence(s.text, s.citations, supported, score, factual=True, **place))
        else:
            checked.append(CheckedSentence(s.text, (), None, None, factual=is_factual(s), **place))
    return Grounded(sentences=tuple(checked), quotes={n: q for n, (_, q) in best_quote.items()})
