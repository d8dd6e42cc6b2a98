"""OpenAI's chat completions API, and the servers that speak it (Ollama, vLLM, llama.cpp, LM Studio)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from typing import Any

import httpx2
import openai
from openai.types.chat import ChatCompletionMessageParam

from memex.chat.llm.base import LlmMessage, TextDelta, Usage
from memex.chat.llm.bounds import Failure, Limits, bounded_call, bounded_stream
from memex.chat.llm.failures import Redactor, Wording, public_url, retry_after
from memex.errors import ConfigurationError
from memex.settings import Settings

OPENAI_URL = "https://api.openai.com/v1"
# Local servers ignore the key, but the SDK refuses to start without one.
NO_KEY = "not-needed"
_ERRORS = (openai.OpenAIError, httpx2.HTTPError)


class OpenAIChat:
    """A chat model behind an OpenAI-compatible `/chat/completions` endpoint."""

    def __init__(self, *, model: str, base_url: str, api_key: str | None, limits: Limits) -> None:
        self._model = model
        self._base_url = base_url
        self._limits = limits
        self._client = openai.AsyncOpenAI(
            api_key=api_key or NO_KEY,
            base_url=base_url,
            max_retries=0,
            timeout=limits.http_timeout(),
        )
        self._wording = Wording(describe=self.describe(), base_url=public_url(base_url), redact=Redactor(api_key))
        # OpenAI's reasoning models refuse `max_tokens`; most other servers know only `max_tokens`.
        self._tokens_param = "max_completion_tokens" if httpx2.URL(base_url).host == "api.openai.com" else "max_tokens"

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenAIChat:
        if not settings.llm_model:
            raise ConfigurationError(
                "set MEMEX_LLM_MODEL to the chat model's name, e.g. llama3.1 for Ollama or gpt-4o-mini for OpenAI"
            )
        key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
        if not settings.llm_base_url and not key:
            raise ConfigurationError(
                "set MEMEX_LLM_API_KEY to your OpenAI API key, or MEMEX_LLM_BASE_URL to a local OpenAI-compatible "
                "server such as Ollama (http://127.0.0.1:11434/v1)"
            )
        return cls(
            model=settings.llm_model,
            base_url=(settings.llm_base_url or OPENAI_URL).rstrip("/"),
            api_key=key,
            limits=Limits.from_settings(settings),
        )

    @property
    def provider(self) -> str:
        return "openai"

    @property
    def model(self) -> str:
        return self._model

    def describe(self) -> str:
        return f"openai {self._model} at {public_url(self._base_url)}"

    def stream(
        self, *, system: str, messages: Sequence[LlmMessage], max_tokens: int
    ) -> AsyncGenerator[TextDelta | Usage, None]:
        request = self._request(system=system, messages=messages, max_tokens=max_tokens)
        return bounded_stream(
            lambda: self._attempt(request), limits=self._limits, errors=_ERRORS, classify=self._classify
        )

    async def _attempt(self, request: dict[str, Any]) -> AsyncGenerator[TextDelta | Usage, None]:
        stream = await self._client.chat.completions.create(
            **request, stream=True, stream_options={"include_usage": True}
        )
        async with stream:
            usage = Usage()
            finished = False
            async for chunk in stream:
                if chunk.usage is not None:
                    usage = Usage(chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
                for choice in chunk.choices:
                    # A refusal is the model's answer too, and the user should see it.
                    if text := choice.delta.content or choice.delta.refusal:
                        yield TextDelta(text)
                    finished = finished or choice.finish_reason is not None
            if not finished:
                raise self._wording.broke_off("stopped before the end of its answer")
            yield usage

    async def complete(self, *, system: str, messages: Sequence[LlmMessage], max_tokens: int) -> tuple[str, Usage]:
        request = self._request(system=system, messages=messages, max_tokens=max_tokens)
        completion = await bounded_call(
            lambda: self._client.chat.completions.create(**request, stream=False),
            limits=self._limits,
            errors=_ERRORS,
            classify=self._classify,
            timeout_message=f"the language model did not answer within {self._limits.total:g} s",
        )
        text = "".join(choice.message.content or "" for choice in completion.choices[:1])
        usage = completion.usage
        return text, Usage(usage.prompt_tokens, usage.completion_tokens) if usage else Usage()

    async def ping(self) -> str:
        limits = self._limits.for_ping()
        page = await bounded_call(
            lambda: self._client.models.list(timeout=limits.http_timeout()),
            limits=limits,
            errors=_ERRORS,
            classify=self._classify,
            timeout_message=f"the language model at {public_url(self._base_url)} did not answer within {limits.total:g} s",
        )
        ids = {model.id for model in page.data}
        # Ollama lists the models it has pulled: a missing one is worth a word, but some servers list other names.
        return (
            self.describe() if not ids or self._model in ids else f"{self.describe()} (not among the models it lists)"
        )

    async def aclose(self) -> None:
        await self._client.close()

    def _request(self, *, system: str, messages: Sequence[LlmMessage], max_tokens: int) -> dict[str, Any]:
        chat: list[ChatCompletionMessageParam] = [{"role": "system", "content": system}]
        chat += [_message(message) for message in messages]
        return {"model": self._model, "messages": chat, self._tokens_param: max_tokens}

    def _classify(self, exc: Exception) -> Failure:
        if isinstance(exc, openai.APIStatusError):
            retry = exc.status_code == 429 or exc.status_code >= 500
            after = retry_after(exc.response.headers)
            return Failure(self._wording.status(exc.status_code, exc.body), retry=retry, retry_after=after)
        if isinstance(exc, openai.APIConnectionError | httpx2.HTTPError):
            return Failure(self._wording.transport(exc))
        message = exc.message if isinstance(exc, openai.APIError) else str(exc)
        return Failure(self._wording.broke_off(f"failed: {message}"))


def _message(message: LlmMessage) -> ChatCompletionMessageParam:
    if message.role == "user":
        return {"role": "user", "content": message.content}
    return {"role": "assistant", "content": message.content}
