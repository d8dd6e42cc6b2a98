"""Chat request, answer and stream event types."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from memex.errors import MemexError


@dataclass(frozen=True, slots=True)
class ChatRequest:
    message: str
    kb_ids: tuple[uuid.UUID, ...] = ()
    conversation_id: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class Passage:
    """A retrieved chunk as the model sees it: numbered `[n]` in the prompt."""

    n: int
    chunk_id: int
    document_id: uuid.UUID
    kb: uuid.UUID
    kb_name: str
    title: str
    path: str
    heading: str
    location: str
    text: str


@dataclass(frozen=True, slots=True)
class Citation:
    n: int
    chunk_id: int
    document_id: str
    kb: str
    title: str
    path: str
    heading: str
    location: str
    quote: str
    kb_name: str = ""  # last, with a default: answers stored before it was added have none

    @classmethod
    def of(cls, passage: Passage, quote: str) -> Citation:
        return cls(
            n=passage.n,
            chunk_id=passage.chunk_id,
            document_id=str(passage.document_id),
            kb=str(passage.kb),
            title=passage.title,
            path=passage.path,
            heading=passage.heading,
            location=passage.location,
            quote=quote,
            kb_name=passage.kb_name,
        )


@dataclass(frozen=True, slots=True)
class CheckedSentence:
    """One sentence of an answer: the sources it cites, and whether they support it (None: cites none)."""

    text: str
    citations: tuple[int, ...]
    supported: bool | None
    score: float | None
    factual: bool = True  # for an uncited sentence: whether it states something a source should back
    start: int = 0  # where it is in the answer's text
    end: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "citations": list(self.citations),
            "supported": self.supported,
            "score": self.score,
            "factual": self.factual,
            "start": self.start,
            "end": self.end,
        }


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0


@dataclass(frozen=True, slots=True)
class Timings:
    retrieval_ms: float = 0.0
    ttft_ms: float | None = None
    generation_ms: float = 0.0
    grounding_ms: float = 0.0


# Events of the answer stream, in order: token…, citations, done; `error` before a fallback answer.
@dataclass(frozen=True, slots=True)
class TokenEvent:
    text: str
    name = "token"

    def data(self) -> dict[str, Any]:
        return {"text": self.text}


@dataclass(frozen=True, slots=True)
class CitationsEvent:
    citations: tuple[Citation, ...]
    sentences: tuple[CheckedSentence, ...]
    name = "citations"

    def data(self) -> dict[str, Any]:
        return {"citations": [asdict(c) for c in self.citations], "sentences": [s.as_dict() for s in self.sentences]}


@dataclass(frozen=True, slots=True)
class DoneEvent:
    conversation_id: uuid.UUID | None  # None when nothing was saved (stateless clients)
    message_id: uuid.UUID | None
    model: str
    usage: Usage
    timings: Timings
    name = "done"

    def data(self) -> dict[str, Any]:
        return {
            "conversation_id": str(self.conversation_id) if self.conversation_id else None,
            "message_id": str(self.message_id) if self.message_id else None,
            "model": self.model,
            "usage": asdict(self.usage),
            "timings": asdict(self.timings),
        }


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    detail: str
    # What failed, when the answer cannot go on (not for a model failure an extractive answer follows).
    failure: MemexError | None = field(default=None, compare=False)
    name = "error"

    def data(self) -> dict[str, Any]:
        return {"detail": self.detail}


ChatEvent = TokenEvent | CitationsEvent | DoneEvent | ErrorEvent


@dataclass
class ChatAnswer:
    """A whole answer: what `stream: false` returns, gathered from the events."""

    answer: str = ""
    citations: list[dict[str, Any]] = field(default_factory=list)
    sentences: list[dict[str, Any]] = field(default_factory=list)
    done: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    failure: MemexError | None = None

    def add(self, event: ChatEvent) -> None:
        if isinstance(event, TokenEvent):
            self.answer += event.text
        elif isinstance(event, CitationsEvent):
            data = event.data()
            self.citations, self.sentences = data["citations"], data["sentences"]
        elif isinstance(event, DoneEvent):
            self.done = event.data()
        else:
            # The fallback answer that follows an error replaces whatever the model had said.
            self.error, self.answer, self.failure = event.detail, "", event.failure

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"answer": self.answer, "citations": self.citations, "sentences": self.sentences}
        out |= self.done
        if self.error is not None:
            out["error"] = self.error
        return out


@dataclass(frozen=True, slots=True)
class Conversation:
    id: uuid.UUID
    title: str
    kb_ids: tuple[uuid.UUID, ...]
    created_at: datetime
    updated_at: datetime
    message_count: int = 0


@dataclass(frozen=True, slots=True)
class Message:
    id: uuid.UUID
    conversation_id: uuid.UUID
    role: str
    content: str
    citations: list[dict[str, Any]]
    sentences: list[dict[str, Any]]
    model: str | None
    prompt_tokens: int
    completion_tokens: int
    cost: float
    timings: dict[str, Any]
    error: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class UsageRow:
    day: str
    user_id: uuid.UUID | None
    email: str | None
    provider: str
    model: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cost: float
