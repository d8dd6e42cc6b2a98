"""The interface every chat model provider implements, and the errors it raises.

A provider streams text deltas and ends with one `Usage`. It owns its timeouts (connect, first token, whole
answer) and its retries (429 and 5xx, with backoff, only before the first token). Whatever goes wrong surfaces
as an `LlmError` whose message is fit to show a person: the provider's own error text, never the API key.
Cancelling the iteration (a client that went away) closes the upstream request at once.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from memex.errors import ServiceUnavailable


class LlmError(ServiceUnavailable):
    """The language model failed to answer."""


class LlmTimeout(LlmError):
    """The language model did not answer in time."""


@dataclass(frozen=True, slots=True)
class LlmMessage:
    role: Literal["user", "assistant"]
    content: str


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens the provider counted for one call (0 when it did not say)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


class Llm(Protocol):
    """A chat model. Methods are async and safe to call concurrently."""

    @property
    def provider(self) -> str:
        """`openai` or `anthropic`."""
        ...

    @property
    def model(self) -> str: ...

    def stream(
        self, *, system: str, messages: Sequence[LlmMessage], max_tokens: int
    ) -> AsyncGenerator[TextDelta | Usage, None]:
        """Stream the answer: TextDelta items, then exactly one Usage as the last item. Close it (aclosing) to
        end the upstream request at once."""
        ...

    async def complete(self, *, system: str, messages: Sequence[LlmMessage], max_tokens: int) -> tuple[str, Usage]:
        """The whole answer at once (short internal calls, such as rewriting a follow-up question)."""
        ...

    async def ping(self) -> str:
        """A cheap real call that proves the provider answers (for readiness); returns a short description."""
        ...

    async def aclose(self) -> None: ...
