"""Chat: question → retrieval over what the caller may read → a streamed, cited answer → grounding check → saved.

`prepare` checks everything a request can get wrong (so the API answers 4xx before any stream starts);
`stream` yields the answer's events; `ask` gathers them into one answer.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from memex.chat import extractive, grounding, prompt, store
from memex.chat.llm.base import Llm, LlmError, LlmMessage, TextDelta
from memex.chat.llm.base import Usage as LlmUsage
from memex.chat.models import (
    ChatAnswer,
    ChatEvent,
    ChatRequest,
    Citation,
    CitationsEvent,
    Conversation,
    DoneEvent,
    ErrorEvent,
    Message,
    Passage,
    Timings,
    TokenEvent,
    Usage,
    UsageRow,
)
from memex.db import failures
from memex.errors import InvalidInput, InvalidMessage, MemexError, NotFound
from memex.kbs import store as kbs
from memex.kbs.access import Actor
from memex.logging import query_fields
from memex.runtime import Runtime
from memex.search import service as search
from memex.search.models import SearchFilters, SearchRequest

log = structlog.get_logger("memex.chat")

EXTRACTIVE_MODEL = "extractive"
TITLE_CHARS = 80
_REWRITE_TOKENS = 120
# A piece of the answer that may complete a sentence (which is then embedded while the model goes on).
_SENTENCE_END = re.compile(r"[.!?\]\n]")


@dataclass(frozen=True, slots=True)
class Turn:
    """A checked request, ready to be answered."""

    actor: Actor
    message: str
    kb_ids: tuple[uuid.UUID, ...]
    conversation: Conversation | None
    history: Sequence[prompt.Said]
    # False for stateless clients (the OpenAI-compatible API): they send the history, and nothing but usage is saved.
    save: bool = True


def check_message(runtime: Runtime, message: str) -> str:
    text = message.strip()
    limit = runtime.settings.max_query_chars
    if not text:
        raise InvalidMessage("the message is empty: type a question")
    if len(text) > limit:
        raise InvalidMessage(
            f"the message is {len(text)} characters long; the limit is {limit}: shorten it and ask again"
        )
    if "\x00" in text:
        raise InvalidMessage("the message contains a NUL character; remove it and try again")
    return text


async def prepare(runtime: Runtime, actor: Actor, request: ChatRequest) -> Turn:
    """Validate the message, and resolve the conversation and KBs the caller may use (404 for the rest)."""
    message = check_message(runtime, request.message)
    async with runtime.engine.begin() as conn:
        conversation = None
        history: list[Message] = []
        if request.conversation_id is not None:
            conversation = await store.get_conversation(
                conn, user_id=actor.user_id, conversation_id=request.conversation_id
            )
            if conversation is None:
                raise NotFound("conversation not found")
            history = await store.messages(conn, conversation_id=conversation.id)
        kb_ids = request.kb_ids or (conversation.kb_ids if conversation else ())
        if kb_ids:
            readable = {kb.id for kb in await kbs.list_for(conn, actor)}
            if set(kb_ids) - readable:
                raise NotFound("knowledge base not found")
    return Turn(actor=actor, message=message, kb_ids=tuple(kb_ids), conversation=conversation, history=history)


async def prepare_stateless(
    runtime: Runtime,
    actor: Actor,
    *,
    message: str,
    kb_ids: tuple[uuid.UUID, ...],
    history: Sequence[prompt.Said],
) -> Turn:
    """A turn for a client that keeps its own history (the OpenAI-compatible API): only usage is saved."""
    checked = check_message(runtime, message)
    if kb_ids:
        async with runtime.engine.begin() as conn:
            readable = {kb.id for kb in await kbs.list_for(conn, actor)}
        if set(kb_ids) - readable:
            raise NotFound("knowledge base not found")
    return Turn(actor=actor, message=checked, kb_ids=kb_ids, conversation=None, history=history, save=False)


@dataclass
class _Embedding:
    """What is embedded while the model answers, so the grounding check after its last token has little left to do:
    the passages' sentences first, then the answer's, each once it is complete."""

    passages: asyncio.Task[dict[int, grounding.PreparedPassage]]
    answer: grounding.AnswerVectors
    sentences: asyncio.Task[None] | None = None

    @classmethod
    def start(
        cls, vectors: grounding.SentenceVectors, passages: Sequence[Passage], answer: grounding.AnswerVectors
    ) -> _Embedding:
        return cls(passages=asyncio.create_task(asyncio.to_thread(vectors.prepare, passages)), answer=answer)

    def sentence_may_end(self, partial: str) -> None:
        if self.answer.note(partial) and (self.sentences is None or self.sentences.done()):
            self.sentences = asyncio.create_task(self._catch_up())

    async def _catch_up(self) -> None:
        # The model runs one call at a time: sentences completed while the passages are embedded wait, and go
        # through together afterwards.
        await asyncio.wait([self.passages])
        while self.answer.waiting():
            await asyncio.to_thread(self.answer.embed_waiting)

    async def finish(self) -> dict[int, grounding.PreparedPassage]:
        prepared = await self.passages
        if self.sentences is not None:
            await asyncio.gather(self.sentences, return_exceptions=True)  # a failure is retried by the check
        return prepared

    def cancel(self) -> None:
        for task in (self.passages, self.sentences):
            if task is not None and not task.done():
                task.cancel()


@dataclass
class _Answer:
    """What one answer accumulates on its way."""

    text: str = ""
    model: str = EXTRACTIVE_MODEL
    provider: str = "none"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None
    first_token_at: float | None = None
    finished_at: float | None = None
    passages: list[Passage] = field(default_factory=list)


async def stream(runtime: Runtime, turn: Turn) -> AsyncIterator[ChatEvent]:
    """The answer's events: token…, citations, done — with `error` and an extractive answer if the model fails."""
    started = time.perf_counter()
    answer = _Answer()
    answered = False
    try:
        query = await _retrieval_query(runtime, turn, answer)
        results = await search.search(
            runtime,
            turn.actor,
            SearchRequest(
                query=query,
                limit=runtime.settings.chat_passages,
                filters=SearchFilters(kb_ids=turn.kb_ids),
                operators=False,
            ),
        )
        answer.passages = prompt.pack(results, budget_tokens=runtime.settings.chat_context_tokens)
        retrieval_ms = _ms(started)
        llm = runtime.llm
        answer_vectors = grounding.AnswerVectors(runtime.embedder)
        embedding: _Embedding | None = None
        try:
            if llm is None or not answer.passages:
                prepared = grounding.split_passages(answer.passages)
                async for event in _extractive(query, prepared, answer, intro=extractive.NO_MODEL_INTRO):
                    yield event
                answer.finished_at = time.perf_counter()
            else:
                embedding = _Embedding.start(sentence_vectors(runtime), answer.passages, answer_vectors)
                async for event in _generate(runtime, llm, turn, answer, embedding):
                    yield event
                if answer.error is not None:
                    # The fallback quotes the passages word for word: its check needs no embeddings.
                    yield ErrorEvent(answer.error)
                    answer.text = ""
                    prepared = grounding.split_passages(answer.passages)
                    async for event in _extractive(query, prepared, answer, intro=extractive.FALLBACK_INTRO):
                        yield event
                    answer.finished_at = time.perf_counter()
                else:
                    answer.finished_at = time.perf_counter()
                    prepared = await embedding.finish()
        finally:
            if embedding is not None:
                embedding.cancel()
        checked = await asyncio.to_thread(
            grounding.check, runtime.embedder, answer.text, prepared, answer_vectors=answer_vectors
        )
        grounding_ms = _ms(answer.finished_at)
        cited = {n for s in checked.sentences for n in s.citations}
        citations = tuple(
            Citation.of(p, checked.quotes.get(p.n) or prepared[p.n].sentences[0])
            for p in answer.passages
            if p.n in cited
        )
        yield CitationsEvent(citations=citations, sentences=checked.sentences)
        timings = Timings(
            retrieval_ms=retrieval_ms,
            ttft_ms=_ms(started, answer.first_token_at) if answer.first_token_at else None,
            generation_ms=_ms(answer.first_token_at or started, answer.finished_at),
            grounding_ms=grounding_ms,
        )
        usage = Usage(
            prompt_tokens=answer.prompt_tokens,
            completion_tokens=answer.completion_tokens,
            cost=cost_of(runtime, answer.model, answer.prompt_tokens, answer.completion_tokens),
        )
        if turn.save:
            conversation_id, message_id = await _save(runtime, turn, answer, citations, checked, usage, timings)
        else:
            conversation_id, message_id = None, None
            await _save_usage(runtime, turn, answer, usage)
        log.info(
            "chat answered",
            model=answer.model,
            passages=len(answer.passages),
            cited=len(citations),
            unsupported=sum(1 for s in checked.sentences if s.supported is False),
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            ttft_ms=timings.ttft_ms,
            error=answer.error,
            user=str(turn.actor.user_id) if turn.actor.user_id else None,
            kb=",".join(map(str, turn.kb_ids)) or None,
            **query_fields(runtime.settings, turn.message, name="question"),
        )
        runtime.metrics.chat_answered(
            provider=answer.provider,
            model=answer.model,
            outcome="fallback" if answer.error else "extractive" if answer.provider == "none" else "model",
            retrieval_seconds=timings.retrieval_ms / 1000,
            ttft_seconds=timings.ttft_ms / 1000 if timings.ttft_ms is not None else None,
            generation_seconds=timings.generation_ms / 1000,
            grounding_seconds=timings.grounding_ms / 1000,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cost=usage.cost,
        )
        answered = True
        yield DoneEvent(
            conversation_id=conversation_id, message_id=message_id, model=answer.model, usage=usage, timings=timings
        )
    except MemexError as exc:
        runtime.metrics.chat_ended(provider=answer.provider, model=answer.model, outcome="error")
        yield ErrorEvent(exc.message)
    except Exception as exc:  # the stream has started: say what failed in it rather than cut it off
        runtime.metrics.chat_ended(provider=answer.provider, model=answer.model, outcome="error")
        if (down := failures.unavailable(exc)) is not None:
            log.error("chat failed: database error", error=failures.first_line(exc))
            yield ErrorEvent(down.message, failure=down)
        else:
            log.exception("chat failed")
            yield ErrorEvent("internal error: see the server log")
    except (asyncio.CancelledError, GeneratorExit):
        if not answered:
            runtime.metrics.chat_ended(provider=answer.provider, model=answer.model, outcome="cancelled")
        # The client went away (or pressed stop): keep the question and what was said so far.
        if turn.save and (answer.text or turn.conversation is None):
            answer.error = "stopped before the answer was complete"
            runtime.keep(_save_stopped(runtime, turn, answer))
        raise


async def _retrieval_query(runtime: Runtime, turn: Turn, answer: _Answer) -> str:
    """What to search for: a follow-up rewritten into a standalone question, or folded into the previous one."""
    limit = runtime.settings.max_query_chars
    if not turn.history:
        return turn.message
    llm = runtime.llm
    if llm is not None:
        history = prompt.history_messages(turn.history, budget_tokens=runtime.settings.chat_history_tokens)
        try:
            text, usage = await llm.complete(
                system=prompt.REWRITE_PROMPT,
                messages=[*history, LlmMessage(role="user", content=turn.message)],
                max_tokens=_REWRITE_TOKENS,
            )
            answer.prompt_tokens += usage.prompt_tokens
            answer.completion_tokens += usage.completion_tokens
            if text.strip():
                return " ".join(text.split())[:limit]
        except LlmError as exc:
            log.warning("question rewrite failed; folding the previous question in instead", error=exc.message)
    return prompt.folded_question(turn.message, turn.history, limit=limit)


async def _generate(
    runtime: Runtime,
    llm: Llm,
    turn: Turn,
    answer: _Answer,
    embedding: _Embedding,
) -> AsyncIterator[TokenEvent]:
    settings = runtime.settings
    history = prompt.history_messages(turn.history, budget_tokens=settings.chat_history_tokens)
    question = LlmMessage(role="user", content=prompt.question_message(turn.message, answer.passages))
    messages = [*history, question]
    answer.model, answer.provider = llm.model, llm.provider
    usage = LlmUsage()
    try:
        # aclosing: a client that leaves closes the model's request now, not when the generator is collected.
        generation = llm.stream(system=prompt.SYSTEM_PROMPT, messages=messages, max_tokens=settings.llm_max_tokens)
        async with aclosing(generation):
            async for item in generation:
                if isinstance(item, TextDelta):
                    if not item.text:
                        continue
                    if answer.first_token_at is None:
                        answer.first_token_at = time.perf_counter()
                    answer.text += item.text
                    if _SENTENCE_END.search(item.text):
                        embedding.sentence_may_end(answer.text)
                    yield TokenEvent(item.text)
                else:
                    usage = item
    except LlmError as exc:
        answer.error = f"the language model failed: {exc.message}"
        answer.model, answer.provider = EXTRACTIVE_MODEL, "none"
        return
    # Some local servers report no usage: estimate it, so budgets and reports stay meaningful.
    answer.prompt_tokens += usage.prompt_tokens or sum(prompt.estimate_tokens(m.content) for m in messages)
    answer.completion_tokens += usage.completion_tokens or prompt.estimate_tokens(answer.text)


async def _extractive(
    query: str, prepared: dict[int, grounding.PreparedPassage], answer: _Answer, *, intro: str
) -> AsyncIterator[TokenEvent]:
    if not answer.passages:
        answer.text = prompt.NOTHING_FOUND
        answer.first_token_at = answer.first_token_at or time.perf_counter()
        yield TokenEvent(answer.text)
        return
    text = extractive.compose(extractive.pick_sentences(query, prepared), intro=intro)
    answer.first_token_at = answer.first_token_at or time.perf_counter()
    for line in text.splitlines(keepends=True):
        answer.text += line
        yield TokenEvent(line)


def sentence_vectors(runtime: Runtime) -> grounding.SentenceVectors:
    """The process's cache of passage-sentence embeddings."""
    found = runtime.caches.get("sentence_vectors")
    if not isinstance(found, grounding.SentenceVectors):
        found = grounding.SentenceVectors(runtime.embedder)
        runtime.caches["sentence_vectors"] = found
    return found


def cost_of(runtime: Runtime, model: str, prompt_tokens: int, completion_tokens: int) -> float:
    """What the model's price table says this cost; models without a price (local ones) cost 0."""
    price = runtime.settings.llm_prices.get(model)
    if price is None:
        return 0.0
    return round((prompt_tokens * price.input + completion_tokens * price.output) / 1_000_000, 8)


def _ms(since: float | None, until: float | None = None) -> float:
    if since is None:
        return 0.0
    return round(((until or time.perf_counter()) - since) * 1000, 2)


def _title(message: str) -> str:
    one_line = " ".join(message.split())
    return one_line if len(one_line) <= TITLE_CHARS else one_line[: TITLE_CHARS - 1].rstrip() + "…"


async def _save(
    runtime: Runtime,
    turn: Turn,
    answer: _Answer,
    citations: tuple[Citation, ...],
    checked: grounding.Grounded,
    usage: Usage,
    timings: Timings,
) -> tuple[uuid.UUID, uuid.UUID]:
    """The question and its answer, and the day's usage, in one transaction."""
    async with runtime.engine.begin() as conn:
        conversation_id = await _conversation_for(conn, turn)
        await store.add_message(conn, conversation_id=conversation_id, role="user", content=turn.message)
        message_id = await store.add_message(
            conn,
            conversation_id=conversation_id,
            role="assistant",
            content=answer.text,
            citations=[asdict(c) for c in citations],
            sentences=[s.as_dict() for s in checked.sentences],
            model=answer.model,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cost=usage.cost,
            timings=asdict(timings),
            error=answer.error,
        )
        await _add_usage(conn, turn, answer, usage)
    return conversation_id, message_id


async def _save_usage(runtime: Runtime, turn: Turn, answer: _Answer, usage: Usage) -> None:
    async with runtime.engine.begin() as conn:
        await _add_usage(conn, turn, answer, usage)


async def _add_usage(conn: AsyncConnection, turn: Turn, answer: _Answer, usage: Usage) -> None:
    await store.add_usage(
        conn,
        day=datetime.now(UTC).date(),
        user_id=turn.actor.user_id,
        provider=answer.provider,
        model=answer.model,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cost=usage.cost,
    )


async def _save_stopped(runtime: Runtime, turn: Turn, answer: _Answer) -> None:
    try:
        async with runtime.engine.begin() as conn:
            conversation_id = await _conversation_for(conn, turn)
            await store.add_message(conn, conversation_id=conversation_id, role="user", content=turn.message)
            await store.add_message(
                conn,
                conversation_id=conversation_id,
                role="assistant",
                content=answer.text,
                model=answer.model,
                error=answer.error,
            )
    except Exception:  # the request is gone; nobody else can be told
        log.exception("could not save a stopped answer")


async def _conversation_for(conn: AsyncConnection, turn: Turn) -> uuid.UUID:
    if turn.conversation is not None:
        return turn.conversation.id
    return await store.create_conversation(
        conn, user_id=turn.actor.user_id, title=_title(turn.message), kb_ids=list(turn.kb_ids) or None
    )


async def ask(runtime: Runtime, actor: Actor, request: ChatRequest) -> ChatAnswer:
    """The whole answer at once (`stream: false`, the CLI's --json, MCP's `ask`)."""
    turn = await prepare(runtime, actor, request)
    gathered = ChatAnswer()
    async for event in stream(runtime, turn):
        gathered.add(event)
    return gathered


# Conversations


async def list_conversations(
    conn: AsyncConnection, actor: Actor, *, limit: int = 50, offset: int = 0
) -> list[Conversation]:
    return await store.list_conversations(conn, user_id=actor.user_id, limit=limit, offset=offset)


async def get_conversation(
    conn: AsyncConnection, actor: Actor, conversation_id: uuid.UUID
) -> tuple[Conversation, list[Message]]:
    found = await store.get_conversation(conn, user_id=actor.user_id, conversation_id=conversation_id)
    if found is None:
        raise NotFound("conversation not found")
    return found, await store.messages(conn, conversation_id=conversation_id)


async def rename_conversation(
    conn: AsyncConnection, actor: Actor, conversation_id: uuid.UUID, *, title: str
) -> Conversation:
    clean = " ".join(title.split())
    if not 1 <= len(clean) <= 200:
        raise InvalidInput("a conversation's title must be 1 to 200 characters long")
    if not await store.rename_conversation(conn, user_id=actor.user_id, conversation_id=conversation_id, title=clean):
        raise NotFound("conversation not found")
    found = await store.get_conversation(conn, user_id=actor.user_id, conversation_id=conversation_id)
    assert found is not None
    return found


async def delete_conversation(conn: AsyncConnection, actor: Actor, conversation_id: uuid.UUID) -> None:
    if not await store.delete_conversation(conn, user_id=actor.user_id, conversation_id=conversation_id):
        raise NotFound("conversation not found")


# Usage


async def usage_report(conn: AsyncConnection, *, days: int) -> list[UsageRow]:
    """Daily token and cost totals per user and model over the last `days` days (today included)."""
    if not 1 <= days <= 3660:
        raise InvalidInput("days must be between 1 and 3660")
    since: date = datetime.now(UTC).date() - timedelta(days=days - 1)
    return await store.usage_since(conn, since=since)


def usage_totals(rows: Sequence[UsageRow]) -> dict[str, int | float]:
    return {
        "requests": sum(r.requests for r in rows),
        "prompt_tokens": sum(r.prompt_tokens for r in rows),
        "completion_tokens": sum(r.completion_tokens for r in rows),
        "cost": round(sum(r.cost for r in rows), 6),
    }


# Readiness


async def llm_status(runtime: Runtime) -> tuple[bool, str]:
    """Whether the chat model answers (a cheap real call, reused for MEMEX_LLM_HEALTH_CACHE_SECONDS)."""
    llm = runtime.llm
    if llm is None:
        return True, "none configured: answers are extractive"
    cached = runtime.caches.get("llm_status")
    now = time.monotonic()
    if isinstance(cached, tuple) and now - cached[0] < runtime.settings.llm_health_cache_seconds:
        return cached[1], cached[2]
    try:
        ok, detail = True, await llm.ping()
    except LlmError as exc:
        ok, detail = False, exc.message
    runtime.caches["llm_status"] = (now, ok, detail)
    return ok, detail
