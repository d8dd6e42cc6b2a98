"""The chat model providers, through the real SDKs, against real HTTP servers speaking each provider's protocol."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

import pytest

from memex.chat.llm import build_llm
from memex.chat.llm.base import Llm, LlmError, LlmMessage, LlmTimeout, TextDelta, Usage
from memex.errors import ConfigurationError
from memex.settings import Settings
from tests.doubles.answer import NOT_IN_DOCUMENTS
from tests.doubles.script import fail, hang, reply
from tests.doubles.server import LlmDouble

KEY = "sk-memex-test-0123456789abcdef"
SYSTEM = "Answer from the sources only, and cite them as [n]."
QUESTION = [LlmMessage(role="user", content="What is Memex?")]
MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-sonnet-5"}


@dataclass
class Provider:
    """One provider under test: its double, and a way to build the provider against it."""

    name: str
    double: LlmDouble
    opened: list[Llm] = field(default_factory=list)

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "llm_provider": self.name,
            "llm_model": MODELS[self.name],
            "llm_base_url": self.double.base_url,
            "llm_api_key": KEY,
            "llm_timeout_seconds": 10,
            "llm_connect_timeout_seconds": 2,
            "llm_first_token_timeout_seconds": 2,
            "llm_max_retries": 2,
        }
        return Settings(**(values | overrides))

    def llm(self, **overrides: Any) -> Llm:
        llm = build_llm(self.settings(**overrides))
        assert llm is not None
        self.opened.append(llm)
        return llm

    def sent_key(self) -> str | None:
        return self.double.presented_key(self.double.generations[-1].headers)


@pytest.fixture(params=["openai", "anthropic"])
async def provider(request: pytest.FixtureRequest) -> AsyncIterator[Provider]:
    tested = Provider(request.param, request.getfixturevalue(f"{request.param}_double"))
    yield tested
    for llm in tested.opened:
        await llm.aclose()


async def collect(llm: Llm, *, messages: list[LlmMessage] = QUESTION) -> list[TextDelta | Usage]:
    async with aclosing(llm.stream(system=SYSTEM, messages=messages, max_tokens=200)) as stream:
        return [item async for item in stream]


def text_of(items: list[TextDelta | Usage]) -> str:
    return "".join(item.text for item in items if isinstance(item, TextDelta))


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- answers


async def test_streams_text_deltas_then_exactly_one_usage(provider: Provider) -> None:
    provider.double.push(reply("Memex keeps your notes searchable.", chunks=4, usage=(42, 7)))

    items = await collect(provider.llm())

    assert [type(item) for item in items] == [TextDelta] * 4 + [Usage]
    assert text_of(items) == "Memex keeps your notes searchable."
    assert items[-1] == Usage(prompt_tokens=42, completion_tokens=7)


async def test_the_request_carries_system_prompt_messages_model_and_limit(provider: Provider) -> None:
    history = [*QUESTION, LlmMessage(role="assistant", content="A tool."), LlmMessage(role="user", content="More?")]
    await collect(provider.llm(), messages=history)

    body = provider.double.generations[-1].body
    assert body["model"] == MODELS[provider.name]
    assert body["stream"] is True
    if provider.name == "openai":
        assert body["messages"][0] == {"role": "system", "content": SYSTEM}
        assert body["messages"][1:] == [{"role": m.role, "content": m.content} for m in history]
        assert body["max_tokens"] == 200
        assert body["stream_options"] == {"include_usage": True}
    else:
        assert body["system"] == SYSTEM
        assert body["messages"] == [{"role": m.role, "content": m.content} for m in history]
        assert body["max_tokens"] == 200


async def test_usage_is_zero_when_the_server_reports_none(openai_double: LlmDouble) -> None:
    provider = Provider("openai", openai_double)
    openai_double.push(reply("No counts here.", send_usage=False))
    try:
        items = await collect(provider.llm())
    finally:
        await provider.opened[0].aclose()
    assert items[-1] == Usage(0, 0)
    assert text_of(items) == "No counts here."


async def test_the_api_key_reaches_the_server(provider: Provider) -> None:
    provider.double.api_key = KEY

    await collect(provider.llm())

    assert provider.sent_key() == KEY


async def test_a_local_server_needs_no_key(openai_double: LlmDouble) -> None:
    provider = Provider("openai", openai_double)
    try:
        items = await collect(provider.llm(llm_api_key=None))
    finally:
        await provider.opened[0].aclose()
    assert text_of(items)
    assert provider.sent_key() == "not-needed"


async def test_complete_returns_the_whole_answer_and_usage(provider: Provider) -> None:
    provider.double.push(reply("Short answer.", usage=(9, 2)))

    text, usage = await provider.llm().complete(system=SYSTEM, messages=QUESTION, max_tokens=50)

    assert (text, usage) == ("Short answer.", Usage(9, 2))
    assert provider.double.generations[-1].streamed is False


async def test_default_answer_cites_the_first_source(provider: Provider) -> None:
    prompt = (
        "Sources:\n[1] Handbook › Storage\nMemex stores notes in Postgres. It indexes them too.\n"
        "[2] Handbook › Search\nSearch is hybrid.\n\nQuestion: where are notes kept?"
    )
    items = await collect(provider.llm(), messages=[LlmMessage(role="user", content=prompt)])
    assert text_of(items) == "Memex stores notes in Postgres [1]."

    assert text_of(await collect(provider.llm())) == NOT_IN_DOCUMENTS


async def test_default_rewrite_returns_the_last_question(provider: Provider) -> None:
    history = [
        *QUESTION,
        LlmMessage(role="assistant", content="A tool."),
        LlmMessage(role="user", content="Who wrote it?"),
    ]
    text, _ = await provider.llm().complete(
        system="Rewrite the last question as a standalone question.", messages=history, max_tokens=50
    )
    assert text == "Who wrote it?"


# -- retries


async def test_rate_limits_are_retried_then_succeed(provider: Provider) -> None:
    provider.double.push(fail(429, headers={"retry-after-ms": "20"}), times=2)

    items = await collect(provider.llm(llm_max_retries=2))

    assert text_of(items) == NOT_IN_DOCUMENTS
    assert [r.status for r in provider.double.generations] == [429, 429, 200]


async def test_a_rate_limit_that_persists_gives_the_providers_words_and_never_the_key(provider: Provider) -> None:
    provider.double.set_default(fail(429, f"Rate limit reached for key {KEY}; slow down", headers={"retry-after": "0"}))

    with pytest.raises(LlmError) as raised:
        await collect(provider.llm(llm_max_retries=1))

    message = str(raised.value)
    assert "429" in message and "Rate limit reached for key" in message and "slow down" in message
    assert KEY not in message and KEY[:8] not in message
    assert len(provider.double.generations) == 2
    assert isinstance(raised.value.__cause__, Exception)


async def test_a_server_error_is_retried_with_backoff(provider: Provider) -> None:
    provider.double.push(fail(500))

    items = await collect(provider.llm(llm_max_retries=1))

    assert text_of(items) == NOT_IN_DOCUMENTS
    assert [r.status for r in provider.double.generations] == [500, 200]


async def test_client_errors_are_not_retried(provider: Provider) -> None:
    provider.double.push(fail(404, "The model `nope` does not exist"))

    with pytest.raises(LlmError, match=r"404.*The model `nope` does not exist"):
        await collect(provider.llm())
    assert len(provider.double.generations) == 1


async def test_a_stream_cut_off_midway_is_an_error_and_is_not_retried(provider: Provider) -> None:
    provider.double.push(reply("one two three four five", stop_after=2))
    received: list[TextDelta | Usage] = []

    with pytest.raises(LlmError) as raised:
        async with aclosing(provider.llm().stream(system=SYSTEM, messages=QUESTION, max_tokens=50)) as stream:
            async for item in stream:
                received.append(item)

    assert not isinstance(raised.value, LlmTimeout)
    assert text_of(received) == "one two "
    assert len(provider.double.generations) == 1
    await provider.double.wait_for(lambda d: d.aborted == 1, what="the double to cut the stream")


# -- timeouts


async def test_a_server_that_never_answers_times_out_on_the_first_token(provider: Provider) -> None:
    provider.double.push(hang())
    llm = provider.llm(llm_first_token_timeout_seconds=0.5)
    start = time.monotonic()

    with pytest.raises(LlmTimeout, match=r"did not start answering within 0\.5 s"):
        await collect(llm)

    assert time.monotonic() - start < 2
    await provider.double.wait_for(lambda d: d.disconnected == 1, what="the client to hang up")


async def test_headers_without_tokens_time_out_on_the_first_token(provider: Provider) -> None:
    provider.double.push(reply(first_token_delay=30))
    llm = provider.llm(llm_first_token_timeout_seconds=0.5)
    start = time.monotonic()

    with pytest.raises(LlmTimeout, match=r"did not start answering within 0\.5 s"):
        await collect(llm)

    assert time.monotonic() - start < 2
    await provider.double.wait_for(lambda d: d.disconnected == 1, what="the client to hang up")


async def test_a_long_gap_between_tokens_times_out(provider: Provider) -> None:
    provider.double.push(reply("first second third", token_delay=30))
    llm = provider.llm(llm_first_token_timeout_seconds=0.5)
    received: list[TextDelta | Usage] = []

    with pytest.raises(LlmTimeout, match=r"stopped answering for 0\.5 s"):
        async with aclosing(llm.stream(system=SYSTEM, messages=QUESTION, max_tokens=50)) as stream:
            async for item in stream:
                received.append(item)

    assert text_of(received) == "first "
    await provider.double.wait_for(lambda d: d.disconnected == 1, what="the client to hang up")


async def test_a_slow_trickle_hits_the_whole_answer_deadline(provider: Provider) -> None:
    provider.double.push(reply("word " * 40, token_delay=0.1))
    llm = provider.llm(llm_first_token_timeout_seconds=0.5, llm_timeout_seconds=1)
    received: list[TextDelta | Usage] = []
    start = time.monotonic()

    with pytest.raises(LlmTimeout, match=r"did not finish answering within 1 s"):
        async with aclosing(llm.stream(system=SYSTEM, messages=QUESTION, max_tokens=50)) as stream:
            async for item in stream:
                received.append(item)

    assert 0.9 < time.monotonic() - start < 2
    assert 3 < len(received) < 40
    await provider.double.wait_for(lambda d: d.disconnected == 1, what="the client to hang up")


# -- cancellation


async def test_closing_the_stream_closes_the_upstream_request(provider: Provider) -> None:
    provider.double.push(reply("word " * 100, token_delay=0.05))
    stream = provider.llm().stream(system=SYSTEM, messages=QUESTION, max_tokens=500)

    assert isinstance(await anext(stream), TextDelta)
    assert provider.double.active == 1
    await stream.aclose()  # type: ignore[attr-defined]

    await provider.double.wait_for(lambda d: d.disconnected == 1 and d.active == 0, what="the upstream to close")


async def test_cancelling_the_consumer_task_closes_the_upstream_request(provider: Provider) -> None:
    provider.double.push(reply("word " * 100, token_delay=0.05))
    llm = provider.llm()
    first = asyncio.Event()

    async def consume() -> None:
        async with aclosing(llm.stream(system=SYSTEM, messages=QUESTION, max_tokens=500)) as stream:
            async for _ in stream:
                first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    await provider.double.wait_for(lambda d: d.disconnected == 1 and d.active == 0, what="the upstream to close")


# -- connection and configuration


async def test_connection_refused_names_the_url(provider: Provider) -> None:
    url = f"http://127.0.0.1:{closed_port()}" + ("/v1" if provider.name == "openai" else "")
    llm = provider.llm(llm_base_url=url)

    with pytest.raises(LlmError) as raised:
        await collect(llm)
    assert str(raised.value) == f"cannot reach the language model at {url}: connection refused"

    with pytest.raises(LlmError, match="connection refused"):
        await llm.ping()


async def test_ping_describes_the_model(provider: Provider) -> None:
    llm = provider.llm()

    assert await llm.ping() == f"{provider.name} {MODELS[provider.name]} at {provider.double.base_url}"
    assert provider.double.requests[-1].path == "/v1/models"


async def test_ping_fails_with_the_providers_words(provider: Provider) -> None:
    provider.double.api_key = "sk-another-key-entirely"

    with pytest.raises(LlmError) as raised:
        await provider.llm().ping()

    assert "401" in str(raised.value)
    assert KEY not in str(raised.value)


async def test_ping_times_out(provider: Provider) -> None:
    provider.double.push(hang(), endpoint="models")

    with pytest.raises(LlmTimeout, match=r"did not answer within 0\.5 s"):
        await provider.llm(llm_first_token_timeout_seconds=0.5).ping()
    await provider.double.wait_for(lambda d: d.disconnected == 1, what="the client to hang up")


@pytest.mark.parametrize("name", ["openai", "anthropic"])
def test_a_missing_model_is_a_configuration_error(name: str) -> None:
    with pytest.raises(ConfigurationError, match="set MEMEX_LLM_MODEL"):
        build_llm(Settings(llm_provider=name, llm_base_url="http://127.0.0.1:1/v1"))


@pytest.mark.parametrize("name", ["openai", "anthropic"])
def test_the_hosted_api_without_a_key_is_a_configuration_error(name: str) -> None:
    with pytest.raises(ConfigurationError, match="MEMEX_LLM_API_KEY"):
        build_llm(Settings(llm_provider=name, llm_model="some-model"))


def test_no_provider_means_no_model() -> None:
    assert build_llm(Settings(llm_provider="none")) is None
