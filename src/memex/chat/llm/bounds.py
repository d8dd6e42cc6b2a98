"""How every call to a model is bounded: the first-token and between-token gap, the whole-answer deadline, retries.

The SDKs' own retries are off (they would also retry timeouts and streams that failed half-way); retries happen
here, for what a provider's `classify` marks retryable (429, 5xx), and only before the first text was streamed.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import httpx2

from memex.chat.llm.base import LlmError, LlmTimeout, TextDelta, Usage
from memex.settings import Settings

T = TypeVar("T")
Item = TextDelta | Usage

_FIRST_BACKOFF = 0.5
_MAX_BACKOFF = 8.0
_PING_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Limits:
    """Timeouts in seconds and retries, from the MEMEX_LLM_* settings."""

    total: float
    connect: float
    first_token: float
    max_retries: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            total=settings.llm_timeout_seconds,
            connect=settings.llm_connect_timeout_seconds,
            first_token=settings.llm_first_token_timeout_seconds,
            max_retries=settings.llm_max_retries,
        )

    def for_ping(self) -> Limits:
        """Short limits for a readiness check: a few seconds at most, and no retries."""
        seconds = min(_PING_SECONDS, self.first_token, self.total)
        return Limits(total=seconds, connect=min(self.connect, seconds), first_token=seconds, max_retries=0)

    def http_timeout(self) -> httpx2.Timeout:
        # A backstop only: the deadlines below are enforced around each read and fire first.
        return httpx2.Timeout(self.total + 1, connect=self.connect)


@dataclass(frozen=True, slots=True)
class Failure:
    """What a provider made of an exception: the error to raise, and whether another attempt may succeed."""

    error: LlmError
    retry: bool = False
    retry_after: float | None = None


Classify = Callable[[Exception], Failure]


def _backoff(retries: int, failure: Failure) -> float:
    if failure.retry_after is not None:
        return max(failure.retry_after, 0.0)
    return min(_FIRST_BACKOFF * 2.0**retries, _MAX_BACKOFF) * (1 - 0.25 * random.random())


def _retry_delay(failure: Failure, *, retries: int, limits: Limits, remaining: float) -> float | None:
    """Seconds to wait before another attempt, or None when the failure is final."""
    if not failure.retry or retries >= limits.max_retries:
        return None
    delay = _backoff(retries, failure)
    return delay if delay < remaining else None


async def bounded_stream(
    attempt: Callable[[], AsyncGenerator[Item, None]],
    *,
    limits: Limits,
    errors: tuple[type[Exception], ...],
    classify: Classify,
) -> AsyncGenerator[Item, None]:
    """Run `attempt` under the limits, retrying failures before the first text; closes the attempt on any exit."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limits.total
    retries = 0
    while True:
        upstream = attempt()
        streamed = False
        last_text = loop.time()
        pause = 0.0
        try:
            while True:
                gap_end = last_text + limits.first_token
                try:
                    async with asyncio.timeout_at(min(gap_end, deadline)):
                        item = await anext(upstream)
                except StopAsyncIteration:
                    return
                except TimeoutError as exc:
                    raise _timeout(limits, streamed=streamed, whole=deadline <= gap_end) from exc
                except errors as exc:
                    failure = classify(exc)
                    remaining = deadline - loop.time()
                    delay = (
                        None if streamed else _retry_delay(failure, retries=retries, limits=limits, remaining=remaining)
                    )
                    if delay is None:
                        raise failure.error from exc
                    pause = delay
                    break
                if isinstance(item, TextDelta):
                    streamed = True
                    last_text = loop.time()
                yield item
        finally:
            # Closing the SDK stream closes the HTTP response, so the model server sees the client leave.
            await upstream.aclose()
        retries += 1
        await asyncio.sleep(pause)


async def bounded_call(
    call: Callable[[], Awaitable[T]],
    *,
    limits: Limits,
    errors: tuple[type[Exception], ...],
    classify: Classify,
    timeout_message: str,
) -> T:
    """Await `call` within `limits.total`, retrying what `classify` marks retryable."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limits.total
    retries = 0
    while True:
        try:
            async with asyncio.timeout_at(deadline):
                return await call()
        except TimeoutError as exc:
            raise LlmTimeout(timeout_message) from exc
        except errors as exc:
            failure = classify(exc)
            delay = _retry_delay(failure, retries=retries, limits=limits, remaining=deadline - loop.time())
            if delay is None:
                raise failure.error from exc
        retries += 1
        await asyncio.sleep(delay)


def _timeout(limits: Limits, *, streamed: bool, whole: bool) -> LlmTimeout:
    if whole:
        return LlmTimeout(f"the language model did not finish answering within {limits.total:g} s")
    if streamed:
        return LlmTimeout(f"the language model stopped answering for {limits.first_token:g} s")
    return LlmTimeout(f"the language model did not start answering within {limits.first_token:g} s")
