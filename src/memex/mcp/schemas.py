"""The tools' input and output schemas, as the MCP client sees them in `tools/list`."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, NotRequired

from pydantic import BaseModel, ConfigDict, Field

# pydantic reads TypedDicts from typing_extensions on Python < 3.12.
from typing_extensions import TypedDict

from memex.search.models import MAX_LIMIT, Mode

# Inputs


class Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


KbArg = Annotated[
    str | None,
    Field(description="A knowledge base's id or name (see list_knowledge_bases); omit it to use all you may read."),
]


class SearchArgs(Args):
    query: str = Field(description='What to look for. Supports file:"*.md", +"must have" and -"must not have".')
    kb: KbArg = None
    limit: int = Field(default=10, ge=1, le=MAX_LIMIT, description="How many results.")
    mode: Mode = Field(default="hybrid", description="hybrid (meaning and words), vector (meaning) or keyword (words).")


class AskArgs(Args):
    question: str = Field(description="The question, in plain words.")
    kb: KbArg = None


class GetDocumentArgs(Args):
    document_id: uuid.UUID = Field(description="The document's id, as search results and citations give it.")
    offset: int = Field(default=0, ge=0, description="Where to start reading the text, in characters.")


class NoArgs(Args):
    pass


# Outputs: the HTTP API's shapes (a client checks results against them)


class KnowledgeBase(TypedDict):
    id: str
    name: str
    description: str
    role: str | None
    is_personal: bool
    owner_id: str | None
    document_count: int
    created_at: str


class KnowledgeBasesOutput(TypedDict):
    knowledge_bases: list[KnowledgeBase]


class SearchHit(TypedDict):
    document_id: str
    kb: str
    kb_name: str
    title: str
    path: str
    heading: str
    location: str
    text: str
    snippet: str
    score: float


class SearchOutput(TypedDict):
    results: list[SearchHit]


class Citation(TypedDict):
    n: int
    chunk_id: int
    document_id: str
    kb: str
    title: str
    path: str
    heading: str
    location: str
    quote: str


class AnswerOutput(TypedDict):
    answer: str
    citations: list[Citation]
    sentences: list[dict[str, Any]]
    conversation_id: NotRequired[str]
    message_id: NotRequired[str]
    model: NotRequired[str]
    usage: NotRequired[dict[str, Any]]
    timings: NotRequired[dict[str, Any]]
    error: NotRequired[str]


class DocumentInfo(TypedDict):
    id: str
    kb: str
    name: str
    path: str
    title: str
    mime: str
    file_type: str
    sha256: str
    size: int
    status: str
    error: str | None
    chunk_count: int
    modified_at: str | None
    created_at: str
    updated_at: str
    indexed_at: str | None


class DocumentOutput(TypedDict):
    document: DocumentInfo
    text: str
    offset: int
    next_offset: int | None
    total_chars: int
