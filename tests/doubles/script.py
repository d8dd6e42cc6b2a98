"""What a double does with a request (a `Behaviour`), and what it remembers of one (a `Recorded`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Endpoint = Literal["generate", "models", "embed"]
Outcome = Literal["active", "finished", "disconnected", "aborted"]


@dataclass(frozen=True)
class Behaviour:
    """How the double answers one request. The defaults answer at once with the default answer."""

    text: str | None = None
    """The answer; None answers from the sources in the prompt (see `answer.default_answer`)."""
    chunks: int | None = None
    """Stream the text in this many pieces; None streams one piece per word."""
    first_token_delay: float = 0.0
    """Seconds between the response headers (sent at once) and the first text."""
    token_delay: float = 0.0
    """Seconds between two pieces of text."""
    status: int | None = None
    """Fail with this HTTP status and the provider's error body."""
    error: str | None = None
    """The error body's message (a default per status when None)."""
    stop_after: int | None = None
    """Stream this many pieces, then close the connection without ending the response."""
    hang: bool = False
    """Never answer, not even headers: wait until the client goes away."""
    usage: tuple[int, int] | None = None
    """(prompt tokens, completion tokens) to report; None reports word counts of the prompt and the pieces."""
    send_usage: bool = True
    """False: report no usage (OpenAI streams only), as some OpenAI-compatible servers do."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """Extra response headers, e.g. {"retry-after-ms": "20"}."""


def reply(text: str | None = None, **options: Any) -> Behaviour:
    """Answer with `text` (None: the default answer); options as in `Behaviour`."""
    return Behaviour(text=text, **options)


def fail(status: int, error: str | None = None, **options: Any) -> Behaviour:
    """Fail with `status` and the provider's error body carrying `error`."""
    return Behaviour(status=status, error=error, **options)


def hang() -> Behaviour:
    """Accept the request and never answer, until the client goes away."""
    return Behaviour(hang=True)


@dataclass
class Recorded:
    """One request the double received. `outcome` moves from `active` to how it ended."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    outcome: Outcome = "active"
    status: int | None = None

    @property
    def streamed(self) -> bool:
        return isinstance(self.body, dict) and bool(self.body.get("stream"))
