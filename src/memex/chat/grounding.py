"""The grounding check: is each sentence of an answer supported by the passages it cites?

A sentence is compared with every sentence of each passage it cites, with the local embedder (meaning), and
with the passages' words (the facts themselves: names, numbers, terms). Its score mixes the best semantic match
with the share of its content words found in the cited passages; below `SUPPORT_THRESHOLD` it is marked
unsupported. A sentence that cites nothing has no score (`supported: null`), and one found word for word in a
passage it cites is supported without a model (an extractive answer never waits for one). The passages'
sentences are embedded while the model is still answering (`prepare`), and so is each sentence of the answer
once it is complete (`AnswerVectors`): after the last token, the check embeds little more than the last sentence.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace

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
# A cited sentence of at least this many words found word for word in its passage is supported as it is.
_MIN_QUOTE_WORDS = 4
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
    """A passage ready to be matched: its sentences, their embeddings (None until embedded) and its words."""

    passage: Passage
    sentences: tuple[str, ...]
    vectors: Vectors | None
    words: frozenset[str]


def split_passages(passages: Sequence[Passage]) -> dict[int, PreparedPassage]:
    """The passages' sentences and words, without embeddings (cheap); keyed by `n`."""
    return {p.n: _split(p) for p in passages}


def _split(p: Passage) -> PreparedPassage:
    return PreparedPassage(
        passage=p, sentences=tuple(passage_sentences(p.text)), vectors=None, words=frozenset(content_words(p.text))
    )


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
        missing: list[PreparedPassage] = []
        with self._lock:
            for p in passages:
                hit = self._cache.get((p.chunk_id, p.text))
                if hit is not None:
                    self._cache.move_to_end((p.chunk_id, p.text))
                    out[p.n] = replace(hit, passage=p)
                else:
                    missing.append(_split(p))
        if missing:
            vectors = self._embedder.embed_documents([s for m in missing for s in m.sentences])
            at = 0
            with self._lock:
                for m in missing:
                    p = m.passage
                    prepared = replace(m, vectors=vectors[at : at + len(m.sentences)])
                    at += len(m.sentences)
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
        assert p.vectors is not None, "support() needs embedded passages"
        sims = p.vectors @ vector
        j = int(np.argmax(sims))
        best.append(j)
        semantic = max(semantic, float(sims[j]))
    mine = content_words(sentence)
    found = sum(1 for w in mine if any(w in p.words for p in passages))
    return Support(semantic=semantic, overlap=found / len(mine) if mine else 1.0), best


class AnswerVectors:
    """An answer's sentence embeddings, made while the model still writes: each sentence once it is complete."""

    def __init__(self, embedder: Embedder) -> None:
        self._embedder = embedder
        self._known: dict[str, Vectors] = {}
        self._waiting: dict[str, None] = {}  # complete sentences not embedded yet, in order
        self._lock = threading.Lock()
        # One model call at a time: sentences completed while one runs go together into the next.
        self._model = threading.Lock()

    def note(self, partial: str) -> bool:
        """Note the cited sentences of an unfinished answer that another sentence follows; whether any is new."""
        done = [s.plain for s in split_sentences(partial)[:-1] if s.citations]
        with self._lock:
            new = [s for s in done if s not in self._known and s not in self._waiting]
            self._waiting.update(dict.fromkeys(new))
        return bool(new)

    def waiting(self) -> bool:
        with self._lock:
            return bool(self._waiting)

    def embed_waiting(self) -> None:
        """Embed the noted sentences not embedded yet, in one model call (blocking)."""
        self.embed(())

    def embed(self, sentences: Sequence[str]) -> Vectors:
        """One row per sentence; the model sees only those not embedded before, with any waiting (blocking)."""
        with self._model:
            with self._lock:
                missing = [s for s in dict.fromkeys([*self._waiting, *sentences]) if s not in self._known]
            if missing:
                made = self._embedder.embed_documents(missing)
                with self._lock:
                    self._known.update(zip(missing, made, strict=True))
                    for s in missing:
                        self._waiting.pop(s, None)
        with self._lock:
            rows = [self._known[s] for s in sentences]
        return np.stack(rows) if rows else np.zeros((0, self._embedder.dimension), dtype=np.float32)


def _normal(text: str) -> str:
    return " ".join(words(text))


def quoted(sentence: str, passages: Sequence[PreparedPassage]) -> tuple[PreparedPassage, str] | None:
    """The passage and its sentence that hold `sentence` word for word, if one does (an extractive answer's)."""
    wanted = _normal(sentence)
    if wanted.count(" ") + 1 < _MIN_QUOTE_WORDS:
        return None
    for p in passages:
        if f" {wanted} " in f" {_normal(p.passage.text)} ":
            inside = [s for s in p.sentences if wanted in _normal(s)]
            return p, (inside[0] if inside else sentence)
    return None


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
    answer_vectors: AnswerVectors | None = None,
) -> Grounded:
    """Score every sentence of the answer against the passages it cites (blocking: run it in a thread)."""
    sentences = split_sentences(answer)
    best_quote: dict[int, tuple[float, str]] = {}
    scored: dict[int, tuple[bool, float]] = {}
    to_score: list[tuple[Sentence, list[PreparedPassage]]] = []
    for s in sentences:
        if not s.citations:
            continue
        known = [prepared[n] for n in s.citations if n in prepared]
        if not known:
            scored[id(s)] = (False, 0.0)
        elif (found := quoted(s.plain, known)) is not None:
            scored[id(s)] = (True, 1.0)
            best_quote[found[0].passage.n] = (2.0, found[1])  # a quote beats any similarity
        else:
            to_score.append((s, known))
    if to_score:
        vectors = (answer_vectors or AnswerVectors(embedder)).embed([s.plain for s, _ in to_score])
        embedded = _embedded(embedder, [p for _, known in to_score for p in known])
        for (s, known), vector in zip(to_score, vectors, strict=True):
            passages = [embedded[p.passage.n] for p in known]
            support_found, best = support(vector, s.plain, passages)
            for p, j in zip(passages, best, strict=True):
                assert p.vectors is not None
                similarity = float(p.vectors[j] @ vector)
                if similarity > best_quote.get(p.passage.n, (-2.0, ""))[0]:
                    best_quote[p.passage.n] = (similarity, p.sentences[j])
            score = support_found.score(weight)
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


def _embedded(embedder: Embedder, passages: Sequence[PreparedPassage]) -> dict[int, PreparedPassage]:
    """The passages by `n`, with the sentences of any not embedded yet embedded now, in one model call."""
    out = {p.passage.n: p for p in passages}
    bare = [p for p in out.values() if p.vectors is None]
    if bare:
        vectors = embedder.embed_documents([s for p in bare for s in p.sentences])
        at = 0
        for p in bare:
            out[p.passage.n] = replace(p, vectors=vectors[at : at + len(p.sentences)])
            at += len(p.sentences)
    return out
