"""Split a parsed document into chunks that fit the embedding model, at heading, paragraph, then sentence boundaries."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from tokenizers import Tokenizer

from memex.ingest.models import ParsedDocument, Section

HEADING_SEPARATOR = " › "
# [CLS] and [SEP], which the model adds around every input.
_SPECIAL_TOKENS = 2
_PARAGRAPH = re.compile(r"\n\s*\n")
_SENTENCE = re.compile(r"(?<=[.!?。！？])\s+")


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of a document small enough to embed, with the context it sits in."""

    ordinal: int
    heading: str
    context: str
    location: str
    text: str
    token_count: int

    @property
    def embed_text(self) -> str:
        """What the model sees: the title and headings, then the text."""
        return f"{self.context}\n{self.text}" if self.context else self.text


@dataclass(frozen=True, slots=True)
class _Unit:
    text: str
    tokens: int
    starts_paragraph: bool = True


class Chunker:
    """Packs text into chunks of at most `max_tokens` model tokens, context included."""

    def __init__(self, tokenizer: Tokenizer, *, max_tokens: int = 256, overlap_tokens: int = 0) -> None:
        self._tok = tokenizer
        self.max_tokens = max_tokens
        self.overlap_tokens = overlap_tokens

    def count(self, texts: Sequence[str]) -> list[int]:
        return [len(e.ids) for e in self._tok.encode_batch(list(texts), add_special_tokens=False)]

    def chunk(self, doc: ParsedDocument) -> list[Chunk]:
        chunks: list[Chunk] = []
        for heading_path, sections in _group_by_heading(doc.sections):
            heading = HEADING_SEPARATOR.join(heading_path)
            context = self._fit_context(HEADING_SEPARATOR.join([doc.title, *heading_path]) if doc.title else heading)
            budget = self.max_tokens - _SPECIAL_TOKENS - (self.count([context])[0] + 1 if context else 0)
            for section_group in _split_sections(sections):
                location = section_group[0].location
                units = self._units([s.text for s in section_group], budget)
                for text, tokens in self._pack(units, budget):
                    chunks.append(
                        Chunk(
                            ordinal=len(chunks),
                            heading=heading,
                            context=context,
                            location=location,
                            text=text,
                            token_count=tokens,
                        )
                    )
        return chunks

    def _fit_context(self, context: str) -> str:
        """Headings may take at most a quarter of a chunk; the text is what matters."""
        limit = self.max_tokens // 4
        enc = self._tok.encode(context, add_special_tokens=False)
        if len(enc.ids) <= limit:
            return context
        return context[: enc.offsets[limit - 1][1]] + "…"

    def _units(self, texts: Sequence[str], budget: int) -> list[_Unit]:
        """Paragraphs, with any paragraph too long for a chunk split into sentences, then into token windows."""
        paragraphs = [p.strip() for text in texts for p in _PARAGRAPH.split(text) if p.strip()]
        units: list[_Unit] = []
        for paragraph, tokens in zip(paragraphs, self.count(paragraphs), strict=True):
            if tokens <= budget:
                units.append(_Unit(paragraph, tokens))
                continue
            sentences = [s for s in _SENTENCE.split(paragraph) if s.strip()]
            for sentence, stokens in zip(sentences, self.count(sentences), strict=True):
                if stokens <= budget:
                    units.append(_Unit(sentence, stokens, starts_paragraph=sentence is sentences[0]))
                else:
                    units.extend(self._windows(sentence, budget))
        return units

    def _windows(self, text: str, budget: int) -> Iterator[_Unit]:
        """Cut text with no usable boundary at token offsets, so no window exceeds the budget."""
        offsets = self._tok.encode(text, add_special_tokens=False).offsets
        for start in range(0, len(offsets), budget):
            window = offsets[start : start + budget]
            yield _Unit(text[window[0][0] : window[-1][1]], len(window), starts_paragraph=False)

    def _pack(self, units: list[_Unit], budget: int) -> Iterator[tuple[str, int]]:
        current: list[_Unit] = []
        size = 0
        for unit in units:
            if current and size + unit.tokens > budget:
                yield _join(current), size
                current, size = self._overlap(current, budget - unit.tokens)
            current.append(unit)
            size += unit.tokens
        if current:
            yield _join(current), size

    def _overlap(self, previous: list[_Unit], room: int) -> tuple[list[_Unit], int]:
        """The trailing units of the previous chunk, up to the overlap, that still leave room for the next unit."""
        carried: list[_Unit] = []
        size = 0
        for unit in reversed(previous):
            if size + unit.tokens > min(self.overlap_tokens, room):
                break
            carried.insert(0, unit)
            size += unit.tokens
        return carried, size


def _join(units: list[_Unit]) -> str:
    parts = [units[0].text]
    for unit in units[1:]:
        parts.append(("\n\n" if unit.starts_paragraph else " ") + unit.text)
    return "".join(parts)


def _group_by_heading(sections: Sequence[Section]) -> Iterator[tuple[tuple[str, ...], list[Section]]]:
    """Consecutive sections under the same heading path, so short paragraphs share a chunk."""
    group: list[Section] = []
    for section in sections:
        if group and section.heading_path != group[0].heading_path:
            yield group[0].heading_path, group
            group = []
        group.append(section)
    if group:
        yield group[0].heading_path, group


def _split_sections(sections: list[Section]) -> Iterator[list[Section]]:
    """Sections with distinct pages stay apart, so a chunk's location (its page) is exact."""
    group: list[Section] = []
    for section in sections:
        if group and section.location.startswith("page") and section.location != group[0].location:
            yield group
            group = []
        group.append(section)
    if group:
        yield group
