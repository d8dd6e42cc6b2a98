"""What the model is given: the best passages packed into a token budget, numbered `[n]`, and the prompts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from memex.chat.llm.base import LlmMessage
from memex.chat.models import Passage
from memex.search.models import SearchResult

SYSTEM_PROMPT = """\
You are Memex, an assistant that answers questions from the user's own documents. The sources for each \
question are given with it, each starting on its own line with its number in square brackets, like [1].

Rules:
- Use only the sources. End every sentence that uses a source with its number, like [1] or [1][3].
- If the sources do not contain the answer, say that it is not in your documents. Never guess.
- Answer in the language of the question, briefly and precisely. Markdown is allowed."""

REWRITE_PROMPT = """\
Rewrite the user's last message as a standalone question that can be understood without the conversation \
before it, keeping every name and term it refers to. Reply with the question only."""


class Said(Protocol):
    """A turn of a conversation: a stored message, or one a stateless client sent."""

    @property
    def role(self) -> str: ...

    @property
    def content(self) -> str: ...


NOTHING_FOUND = "I found nothing about this in your documents."


def estimate_tokens(text: str) -> int:
    """A provider-neutral estimate (about four characters a token in English): budgets, not billing."""
    return len(text) // 4 + 1


def header(passage: Passage) -> str:
    where = " › ".join(x for x in (passage.title or passage.path, passage.heading) if x)
    place = ", ".join(x for x in (passage.path, passage.location) if x)
    return f"[{passage.n}] {where}" + (f" ({place})" if place else "")


def pack(results: Sequence[SearchResult], *, budget_tokens: int) -> list[Passage]:
    """The best results, in rank order, until the budget is spent; the first always fits (cut if need be)."""
    passages: list[Passage] = []
    spent = 0
    seen: set[int] = set()
    for r in results:
        if r.chunk_id in seen:
            continue
        text = r.text
        passage = _passage(len(passages) + 1, r, text)
        cost = estimate_tokens(header(passage)) + estimate_tokens(text)
        if spent + cost > budget_tokens:
            if passages:
                break
            passage = _passage(1, r, text[: max(0, budget_tokens - estimate_tokens(header(passage))) * 4])
            cost = budget_tokens
        passages.append(passage)
        seen.add(r.chunk_id)
        spent += cost
    return passages


def _passage(n: int, r: SearchResult, text: str) -> Passage:
    return Passage(
        n=n,
        chunk_id=r.chunk_id,
        document_id=r.document_id,
        kb=r.kb,
        kb_name=r.kb_name,
        title=r.title,
        path=r.path,
        heading=r.heading,
        location=r.location,
        text=text,
    )


def sources_block(passages: Sequence[Passage]) -> str:
    return "\n\n".join(f"{header(p)}\n{p.text.strip()}" for p in passages)


def question_message(question: str, passages: Sequence[Passage]) -> str:
    if not passages:
        return f"Sources: none were found.\n\nQuestion: {question}"
    return f"Sources:\n\n{sources_block(passages)}\n\nQuestion: {question}"


def history_messages(history: Sequence[Said], *, budget_tokens: int) -> list[LlmMessage]:
    """The most recent complete turns that fit the budget, oldest first, without their sources."""
    kept: list[LlmMessage] = []
    spent = 0
    for message in reversed(history):
        cost = estimate_tokens(message.content)
        if spent + cost > budget_tokens:
            break
        kept.append(LlmMessage(role="user" if message.role == "user" else "assistant", content=message.content))
        spent += cost
    kept.reverse()
    # A conversation sent to a model starts with the user.
    while kept and kept[0].role != "user":
        kept.pop(0)
    return kept


def folded_question(question: str, history: Sequence[Said], *, limit: int) -> str:
    """Without a model to rewrite a follow-up, search with the previous question folded in."""
    previous = next((m.content for m in reversed(history) if m.role == "user"), "")
    folded = f"{previous} {question}".strip() if previous else question
    return folded[-limit:]
