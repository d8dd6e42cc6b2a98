"""The OpenAI-compatible API: any OpenAI client can chat with the knowledge bases its API key may read.

`POST /v1/chat/completions` (streamed or not) and `GET /v1/models`: `memex` is every readable knowledge base,
`memex/<kb name>` one of them. Clients are stateless (they send the whole conversation each time), so nothing but
usage is saved. The answer's sources are appended to its content as a "Sources" list, which plain clients show,
and are also given in a `citations` field.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette import EventSourceResponse

from memex.api.auth import READ_ONLY
from memex.api.deps import CurrentActor, RuntimeDep, rate_limit
from memex.api.schemas import Text, error_responses
from memex.chat import service
from memex.chat.llm.base import LlmMessage
from memex.chat.models import ChatEvent, CitationsEvent, DoneEvent, ErrorEvent, TokenEvent
from memex.errors import InvalidMessage, NotFound, ServiceUnavailable
from memex.kbs import store as kbs
from memex.kbs.access import Actor
from memex.runtime import Runtime

router = APIRouter(prefix="/v1", tags=["openai"], responses=error_responses(400, 401, 403, 404, 422, 429))

MODEL = "memex"


class ChatMessageIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: Text | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):  # content parts: keep the text ones
            return "".join(str(p.get("text", "")) for p in self.content if p.get("type") == "text")
        return self.content or ""


class StreamOptions(BaseModel):
    include_usage: bool = False


class CompletionIn(BaseModel):
    # Other OpenAI parameters (temperature, max_tokens…) are accepted and ignored: Memex sets its own.
    model_config = ConfigDict(extra="allow")

    model: str = Field(default=MODEL, examples=[MODEL, "memex/handbook"])
    messages: list[ChatMessageIn] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None


async def _kb_for_model(runtime: Runtime, actor: Actor, model: str) -> tuple[uuid.UUID, ...]:
    if model == MODEL:
        return ()
    prefix = f"{MODEL}/"
    if not model.startswith(prefix):
        raise NotFound(f"unknown model {model!r}: use {MODEL!r} or '{MODEL}/<knowledge base name>' (see /v1/models)")
    name = model[len(prefix) :]
    async with runtime.engine.begin() as conn:
        found = await kbs.find_by_name(conn, actor, name)
        if not found:
            try:
                by_id = await kbs.get_for(conn, actor, uuid.UUID(name))
            except ValueError:
                by_id = None
            found = [by_id] if by_id else []
    if not found:
        raise NotFound(f"no knowledge base named {name!r} that this key may read (see /v1/models)")
    return (found[0].id,)


def _sources(citations: list[dict[str, Any]]) -> str:
    if not citations:
        return ""
    lines = ["", "", "Sources:"]
    for c in citations:
        where = " › ".join(x for x in (c["path"], c["heading"]) if x)
        place = f" ({c['location']})" if c["location"] else ""
        lines.append(f"[{c['n']}] {c['title'] or c['path']} — {where}{place}")
    return "\n".join(lines)


class _Completion:
    """Turns Memex's answer events into OpenAI's completion chunks."""

    def __init__(self, model: str) -> None:
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.model = model
        self.content = ""
        self.citations: list[dict[str, Any]] = []
        self.sentences: list[dict[str, Any]] = []
        self.usage: dict[str, int] | None = None

    def text_of(self, event: ChatEvent) -> str:
        """The content this event adds; citations and usage are kept for the end."""
        if isinstance(event, TokenEvent):
            return event.text
        if isinstance(event, ErrorEvent):
            return f"({event.detail})\n\n"
        if isinstance(event, CitationsEvent):
            data = event.data()
            self.citations, self.sentences = data["citations"], data["sentences"]
            return _sources(self.citations)
        if isinstance(event, DoneEvent):
            u = event.usage
            self.usage = {
                "prompt_tokens": u.prompt_tokens,
                "completion_tokens": u.completion_tokens,
                "total_tokens": u.prompt_tokens + u.completion_tokens,
            }
        return ""

    def chunk(self, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        body = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
            **extra,
        }
        return json.dumps(body, ensure_ascii=False)

    def whole(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": self.content, "refusal": None},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": self.usage or {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
            "citations": self.citations,
            "sentences": self.sentences,
        }


async def _chunks(events: AsyncIterator[ChatEvent], completion: _Completion, include_usage: bool) -> AsyncIterator[str]:
    yield completion.chunk({"role": "assistant", "content": ""})
    async for event in events:
        text = completion.text_of(event)
        if text:
            yield completion.chunk({"content": text})
    yield completion.chunk({}, "stop", citations=completion.citations, sentences=completion.sentences)
    if include_usage:
        body = json.loads(completion.chunk({}))
        body["choices"], body["usage"] = [], completion.usage
        yield json.dumps(body)
    yield "[DONE]"


@router.post(
    "/chat/completions", response_model=None, openapi_extra=READ_ONLY, dependencies=[Depends(rate_limit("chat"))]
)
async def chat_completions(body: CompletionIn, actor: CurrentActor, runtime: RuntimeDep) -> Response:
    """Chat with your knowledge bases through OpenAI's protocol (the last user message is the question)."""
    said = [m for m in body.messages if m.role in ("user", "assistant")]
    if not said or said[-1].role != "user":
        raise InvalidMessage("the last message must be the user's question")
    history = [LlmMessage(role="user" if m.role == "user" else "assistant", content=m.text()) for m in said[:-1]]
    kb_ids = await _kb_for_model(runtime, actor, body.model)
    turn = await service.prepare_stateless(runtime, actor, message=said[-1].text(), kb_ids=kb_ids, history=history)
    completion = _Completion(body.model)
    events = service.stream(runtime, turn)
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return EventSourceResponse(
            _chunks(events, completion, include_usage), ping=runtime.settings.chat_heartbeat_seconds, sep="\n"
        )
    failed: ErrorEvent | None = None
    async for event in events:
        completion.content += completion.text_of(event)
        failed = event if isinstance(event, ErrorEvent) else failed
    if completion.usage is None:  # no answer at all, not even the extractive fallback
        if failed is not None and failed.failure is not None:
            raise failed.failure
        raise ServiceUnavailable(failed.detail if failed else "the answer could not be completed")
    return JSONResponse(completion.whole())


@router.get("/models")
async def models(actor: CurrentActor, runtime: RuntimeDep) -> dict[str, Any]:
    """`memex` (every knowledge base you may read) and `memex/<name>` for each one."""
    async with runtime.engine.begin() as conn:
        readable = await kbs.list_for(conn, actor)
    names = sorted({kb.name for kb in readable})
    ids = [MODEL, *(f"{MODEL}/{name}" for name in names)]
    return {"object": "list", "data": [{"id": i, "object": "model", "created": 0, "owned_by": "memex"} for i in ids]}
