"""Anthropic's Messages API (Claude)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from typing import Any

import anthropic
import httpx2
from anthropic.types import MessageParam

from memex.chat.llm.base import LlmMessage, TextDelta, Usage
from memex.chat.llm.bounds import Failure, Limits, bounded_call, bounded_stream
from memex.chat.llm.failures import Redactor, Wording, public_url, retry_after
from memex.errors import ConfigurationError
from memex.settings import Settings

ANTHROPIC_URL = "https://api.anthropic.com"
# A compatible proxy may need no key, but the SDK sends none at all without one.
NO_KEY = "not-needed"
_ERRORS = (anthropic.AnthropicError, httpx2.HTTPError)
# Error types of an `error` event inside a stream that another attempt may get past.
_RETRYABLE_TYPES = {"rate_limit_error", "overloaded_error", "api_error"}


class AnthropicChat:
    """Claude, through the Messages API (`POST /v1/messages`)."""

    def __init__(self, *, model: str, base_url: str, api_key: str | None, limits: Limits) -> None:
        self._model = model
        self._base_url = base_url
        self._limits = limits
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key or NO_KEY,
            base_url=base_url,
            max_retries=0,
            timeout=limits.http_timeout(),
        )
        self._wording = Wording(describe=self.describe(), base_url=public_url(base_url), redact=Redactor(api_key))

    @classmethod
    def from_settings(cls, settings: Settings) -> AnthropicChat:
        if not settings.llm_model:
            raise ConfigurationError("set MEMEX_LLM_MODEL to the Claude model's name, e.g. claude-sonnet-5")
        key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
        if not settings.llm_base_url and not key:
            raise ConfigurationError("set MEMEX_LLM_API_KEY to your Anthropic API key")
        return cls(
            model=settings.llm_model,
            base_url=(settings.llm_base_url or ANTHROPIC_URL).rstrip("/"),
            api_key=key,
            limits=Limits.from_settings(settings),
        )

    @property
    def provider(self) -> str:
        return "anthropic"

    @property
    def model(self) -> str:
        return self._model

    def describe(self) -> str:
        return f"anthropic {self._model} at {public_url(self._base_url)}"

    def stream(
        self, *, system: str, messages: Sequence[LlmMessage], max_tokens: int
    ) -> AsyncGenerator[TextDelta | Usage, None]:
        request = self._request(system=system, messages=messages, max_tokens=max_tokens)
        return bounded_stream(
            lambda: self._attempt(request), limits=self._limits, errors=_ERRORS, classify=self._classify
        )

    async def _attempt(self, request: dict[str, Any]) -> AsyncGenerator[TextDelta | Usage, None]:
        stream = await self._client.messages.create(**request, stream=True)
        async with stream:
            input_tokens = output_tokens = 0
            stopped = False
            async for event in stream:
                if event.type == "message_start":
                    input_tokens = event.message.usage.input_tokens
                    output_tokens = event.message.usage.output_tokens
                elif event.type == "content_block_delta" and event.delta.type == "text_delta" and event.delta.text:
                    yield TextDelta(event.delta.text)
                elif event.type == "message_delta":
                    # Counts in message_delta are cumulative: they replace those of message_start.
                    output_tokens = event.usage.output_tokens
                    input_tokens = event.usage.input_tokens or input_tokens
                elif event.type == "message_stop":
                    stopped = True
            if not stopped:
                raise self._wording.broke_off("stopped before the end of its answer")
            yield Usage(input_tokens, output_tokens)

    async def complete(self, *, system: str, messages: Sequence[LlmMessage], max_tokens: int) -> tuple[str, Usage]:
        request = self._request(system=system, messages=messages, max_tokens=max_tokens)
        message = await bounded_call(
            lambda: self._client.messages.create(**request, stream=False),
            limits=self._limits,
            errors=_ERRORS,
            classify=self._classify,
            timeout_message=f"the language model did not answer within {self._limits.total:g} s",
        )
        text = "".join(block.text for block in message.content if block.type == "text")
        return text, Usage(message.usage.input_tokens, message.usage.output_tokens)

    async def ping(self) -> str:
        limits = self._limits.for_ping()
        await bounded_call(
            lambda: self._client.models.list(limit=1, timeout=limits.http_timeout()),
            limits=limits,
            errors=_ERRORS,
            classify=self._classify,
            timeout_message=f"the language model at {public_url(self._base_url)} did not answer within {limits.total:g} s",
        )
        return self.describe()

    async def aclose(self) -> None:
        await self._client.close()

    def _request(self, *, system: str, messages: Sequence[LlmMessage], max_tokens: int) -> dict[str, Any]:
        chat = [_message(message) for message in messages]
        return {"model": self._model, "system": system, "messages": chat, "max_tokens": max_tokens}

    def _classify(self, exc: Exception) -> Failure:
        if isinstance(exc, anthropic.APIStatusError):
            if exc.status_code < 400:
                # An `error` event in a stream that had started with 200 OK.
                retry = exc.type in _RETRYABLE_TYPES
                return Failure(self._wording.broke_off(f"failed: {_event_text(exc)}"), retry=retry)
            retry = exc.status_code == 429 or exc.status_code >= 500
            after = retry_after(exc.response.headers)
            return Failure(self._wording.status(exc.status_code, exc.body), retry=retry, retry_after=after)
        if isinstance(exc, anthropic.APIConnectionError | httpx2.HTTPError):
            return Failure(self._wording.transport(exc))
        message = exc.message if isinstance(exc, anthropic.APIError) else str(exc)
        return Failure(self._wording.broke_off(f"failed: {message}"))


def _event_text(exc: anthropic.APIStatusError) -> str:
    message = exc.api_message or exc.message
    return f"{message} ({exc.type})" if exc.type else message


def _message(message: LlmMessage) -> MessageParam:
    if message.role == "user":
        return {"role": "user", "content": message.content}
    return {"role": "assistant", "content": message.content}
