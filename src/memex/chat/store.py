"""All SQL about conversations, their messages, and token usage.

A conversation belongs to one user (NULL: the local CLI) and only that user reads it; admins included.
"""

from __future__ import annotations

import json
import uuid
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from memex.chat.models import Conversation, Message, UsageRow

_CONVERSATION = (
    "c.id, c.title, c.kb_ids, c.created_at, c.updated_at, "
    "(SELECT count(*) FROM messages m WHERE m.conversation_id = c.id) AS message_count"
)
_MESSAGE = (
    "id, conversation_id, role, content, citations, sentences, model, prompt_tokens, completion_tokens, cost, "
    "timings, error, created_at"
)


def _conversation(row: Any) -> Conversation:
    m = row._mapping
    return Conversation(
        id=m["id"],
        title=m["title"],
        kb_ids=tuple(m["kb_ids"] or ()),
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        message_count=m["message_count"],
    )


def _message(row: Any) -> Message:
    return Message(**row._mapping)


async def create_conversation(
    conn: AsyncConnection, *, user_id: uuid.UUID | None, title: str, kb_ids: list[uuid.UUID] | None
) -> uuid.UUID:
    row = await conn.execute(
        sa.text("INSERT INTO conversations (user_id, title, kb_ids) VALUES (:user_id, :title, :kb_ids) RETURNING id"),
        {"user_id": user_id, "title": title, "kb_ids": kb_ids},
    )
    conversation_id: uuid.UUID = row.scalar_one()
    return conversation_id


async def get_conversation(
    conn: AsyncConnection, *, user_id: uuid.UUID | None, conversation_id: uuid.UUID
) -> Conversation | None:
    row = (
        await conn.execute(
            sa.text(
                f"SELECT {_CONVERSATION} FROM conversations c "
                "WHERE c.id = :id AND c.user_id IS NOT DISTINCT FROM :user_id"
            ),
            {"id": conversation_id, "user_id": user_id},
        )
    ).first()
    return _conversation(row) if row else None


async def list_conversations(
    conn: AsyncConnection, *, user_id: uuid.UUID | None, limit: int, offset: int
) -> list[Conversation]:
    rows = await conn.execute(
        sa.text(
            f"SELECT {_CONVERSATION} FROM conversations c WHERE c.user_id IS NOT DISTINCT FROM :user_id "
            "ORDER BY c.updated_at DESC, c.id LIMIT :limit OFFSET :offset"
        ),
        {"user_id": user_id, "limit": limit, "offset": offset},
    )
    return [_conversation(r) for r in rows]


async def rename_conversation(
    conn: AsyncConnection, *, user_id: uuid.UUID | None, conversation_id: uuid.UUID, title: str
) -> bool:
    done = await conn.execute(
        sa.text("UPDATE conversations SET title = :title WHERE id = :id AND user_id IS NOT DISTINCT FROM :user_id"),
        {"id": conversation_id, "user_id": user_id, "title": title},
    )
    return bool(done.rowcount)


async def delete_conversation(conn: AsyncConnection, *, user_id: uuid.UUID | None, conversation_id: uuid.UUID) -> bool:
    done = await conn.execute(
        sa.text("DELETE FROM conversations WHERE id = :id AND user_id IS NOT DISTINCT FROM :user_id"),
        {"id": conversation_id, "user_id": user_id},
    )
    return bool(done.rowcount)


async def messages(conn: AsyncConnection, *, conversation_id: uuid.UUID) -> list[Message]:
    rows = await conn.execute(
        sa.text(f"SELECT {_MESSAGE} FROM messages WHERE conversation_id = :id ORDER BY created_at, id"),
        {"id": conversation_id},
    )
    return [_message(r) for r in rows]


async def add_message(
    conn: AsyncConnection,
    *,
    conversation_id: uuid.UUID,
    role: str,
    content: str,
    citations: list[dict[str, Any]] | None = None,
    sentences: list[dict[str, Any]] | None = None,
    model: str | None = None,
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
    cost: float = 0.0,
    timings: dict[str, Any] | None = None,
    error: str | None = None,
) -> uuid.UUID:
    row = await conn.execute(
        sa.text(
            "INSERT INTO messages (conversation_id, role, content, citations, sentences, model, prompt_tokens, "
            "completion_tokens, cost, timings, error, created_at) VALUES (:conversation_id, :role, :content, "
            "CAST(:citations AS jsonb), CAST(:sentences AS jsonb), :model, :prompt_tokens, :completion_tokens, "
            # clock_timestamp: a question and its answer saved in one transaction still keep their order.
            ":cost, CAST(:timings AS jsonb), :error, clock_timestamp()) RETURNING id"
        ),
        {
            "conversation_id": conversation_id,
            "role": role,
            "content": content,
            "citations": json.dumps(citations or []),
            "sentences": json.dumps(sentences or []),
            "model": model,
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "cost": cost,
            "timings": json.dumps(timings or {}),
            "error": error,
        },
    )
    await conn.execute(sa.text("UPDATE conversations SET updated_at = now() WHERE id = :id"), {"id": conversation_id})
    message_id: uuid.UUID = row.scalar_one()
    return message_id


async def add_usage(
    conn: AsyncConnection,
    *,
    day: date,
    user_id: uuid.UUID | None,
    provider: str,
    model: str,
    prompt_tokens: int,
    completion_tokens: int,
    cost: float,
) -> None:
    await conn.execute(
        sa.text(
            "INSERT INTO usage (day, user_id, provider, model, requests, prompt_tokens, completion_tokens, cost) "
            "VALUES (:day, :user_id, :provider, :model, 1, :prompt_tokens, :completion_tokens, :cost) "
            "ON CONFLICT (day, user_id, provider, model) DO UPDATE SET requests = usage.requests + 1, "
            "prompt_tokens = usage.prompt_tokens + EXCLUDED.prompt_tokens, "
            "completion_tokens = usage.completion_tokens + EXCLUDED.completion_tokens, cost = usage.cost + EXCLUDED.cost"
        ),
        {
            "day": day,
            "user_id": user_id,
            "provider": provider,
            "model": model,
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "cost": cost,
        },
    )


async def usage_since(conn: AsyncConnection, *, since: date) -> list[UsageRow]:
    """Daily totals from `since` on, newest first, with each user's email."""
    rows = await conn.execute(
        sa.text(
            "SELECT to_char(u.day, 'YYYY-MM-DD') AS day, u.user_id, us.email, u.provider, u.model, u.requests, "
            "u.prompt_tokens, u.completion_tokens, u.cost FROM usage u LEFT JOIN users us ON us.id = u.user_id "
            "WHERE u.day >= :since ORDER BY u.day DESC, us.email NULLS FIRST, u.provider, u.model"
        ),
        {"since": since},
    )
    return [UsageRow(**r._mapping) for r in rows]
