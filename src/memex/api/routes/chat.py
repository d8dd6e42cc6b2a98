"""Chat: `POST /api/chat` (Server-Sent Events, or one JSON object) and the caller's conversations."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import JSONResponse
from sse_starlette import EventSourceResponse, ServerSentEvent

from memex.api.auth import READ_ONLY
from memex.api.deps import ConnDep, CurrentActor, RuntimeDep, rate_limit
from memex.api.schemas import (
    ChatIn,
    ConversationDetailOut,
    ConversationOut,
    ConversationPatch,
    ConversationsOut,
    MessageOut,
    error_responses,
)
from memex.chat import service
from memex.chat.models import ChatAnswer, ChatEvent, ChatRequest, DoneEvent
from memex.errors import ServiceUnavailable

router = APIRouter(prefix="/api", tags=["chat"], responses=error_responses(400, 401, 403, 404, 422, 429))

_EVENTS_DOC: dict[str, Any] = {
    "responses": {
        "200": {
            "description": "With `stream` (the default), Server-Sent Events: `token` {text}…, `citations` "
            "{citations, sentences}, `done` {conversation_id, message_id, model, usage, timings}, and `error` "
            "{detail} (followed by an extractive answer when the model failed). With `stream: false`, one JSON "
            "object: {answer, citations, sentences, conversation_id, message_id, model, usage, timings, error?}.",
            "content": {"text/event-stream": {}, "application/json": {}},
        }
    }
}


async def _sse(events: AsyncIterator[ChatEvent]) -> AsyncIterator[ServerSentEvent]:
    async for event in events:
        yield ServerSentEvent(data=json.dumps(event.data(), ensure_ascii=False), event=event.name)


@router.post(
    "/chat", response_model=None, openapi_extra=READ_ONLY | _EVENTS_DOC, dependencies=[Depends(rate_limit("chat"))]
)
async def chat(body: ChatIn, actor: CurrentActor, runtime: RuntimeDep) -> Response:
    """Ask a question of the knowledge bases you may read; the answer cites its sources as [n]."""
    request = ChatRequest(message=body.message, kb_ids=body.kb_ids(), conversation_id=body.conversation_id)
    turn = await service.prepare(runtime, actor, request)
    if body.stream:
        return EventSourceResponse(
            _sse(service.stream(runtime, turn)), ping=runtime.settings.chat_heartbeat_seconds, sep="\n"
        )
    gathered = ChatAnswer()
    finished = False
    async for event in service.stream(runtime, turn):
        gathered.add(event)
        finished = finished or isinstance(event, DoneEvent)
    if not finished:
        raise gathered.failure or ServiceUnavailable(gathered.error or "the answer could not be completed")
    return JSONResponse(gathered.as_dict())


@router.get("/conversations")
async def list_conversations(
    actor: CurrentActor,
    conn: ConnDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> ConversationsOut:
    """Your conversations, the most recent first."""
    found = await service.list_conversations(conn, actor, limit=limit, offset=offset)
    return ConversationsOut(conversations=[ConversationOut.model_validate(c) for c in found])


@router.get("/conversations/{conversation_id}")
async def get_conversation(conversation_id: uuid.UUID, actor: CurrentActor, conn: ConnDep) -> ConversationDetailOut:
    """One of your conversations with all its messages, oldest first."""
    conversation, messages = await service.get_conversation(conn, actor, conversation_id)
    return ConversationDetailOut(
        **ConversationOut.model_validate(conversation).model_dump(),
        messages=[MessageOut.model_validate(m) for m in messages],
    )


@router.patch("/conversations/{conversation_id}")
async def rename_conversation(
    conversation_id: uuid.UUID, body: ConversationPatch, actor: CurrentActor, conn: ConnDep
) -> ConversationOut:
    """Rename a conversation."""
    return ConversationOut.model_validate(
        await service.rename_conversation(conn, actor, conversation_id, title=body.title)
    )


@router.delete("/conversations/{conversation_id}", status_code=204)
async def delete_conversation(conversation_id: uuid.UUID, actor: CurrentActor, conn: ConnDep) -> Response:
    """Delete a conversation and its messages."""
    await service.delete_conversation(conn, actor, conversation_id)
    return Response(status_code=204)
