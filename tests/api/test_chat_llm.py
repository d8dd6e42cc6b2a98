"""Chat with a language model: the OpenAI and Anthropic doubles (real HTTP servers) behind the real SDKs."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from memex.accounts.models import User
from memex.chat.extractive import FALLBACK_INTRO
from memex.chat.prompt import SYSTEM_PROMPT
from memex.settings import Settings
from tests.api.test_chat import ASPIRIN, COFFEE, sse_events
from tests.conftest import make_settings
from tests.doubles.anthropic_server import AnthropicDouble
from tests.doubles.openai_server import OpenAIDouble
from tests.doubles.script import fail, hang, reply
from tests.doubles.server import LlmDouble
from tests.factories import Factory

API_KEY = "sk-test-d0ubl3-s3cret"


@pytest.fixture(params=["openai", "anthropic"])
def double(request: pytest.FixtureRequest) -> LlmDouble:
    name = request.param
    fixture = "openai_double" if name == "openai" else "anthropic_double"
    found: LlmDouble = request.getfixturevalue(fixture)
    return found


@pytest.fixture
def settings(database_url: str, tmp_path: Path, model_cache_dir: Path, double: LlmDouble) -> Settings:
    """The module's settings: a chat model behind the double, with short timeouts."""
    return make_settings(
        database_url,
        tmp_path / "data",
        model_cache_dir,
        llm_provider="openai" if isinstance(double, OpenAIDouble) else "anthropic",
        llm_base_url=double.base_url,
        llm_model="test-model",
        llm_api_key=API_KEY,
        llm_first_token_timeout_seconds=1.5,
        llm_timeout_seconds=5,
        llm_max_retries=1,
        llm_prices={"test-model": {"input": 2.0, "output": 10.0}},
    )


async def _client(make: Factory, alice: User) -> httpx.AsyncClient:
    kb = await make.personal_kb(alice)
    await make.document(kb, name="aspirin.md", text=ASPIRIN)
    await make.document(kb, name="coffee.md", text=COFFEE)
    return await make.as_user(alice)


def _prompt_of(double: LlmDouble) -> tuple[str, list[dict[str, str]]]:
    """The system prompt and the messages of the last generation request, for either protocol."""
    body = double.generations[-1].body
    if isinstance(double, AnthropicDouble):
        return body["system"], body["messages"]
    return body["messages"][0]["content"], body["messages"][1:]


async def test_a_streamed_answer_comes_from_the_model_with_checked_citations(
    make: Factory, alice: User, double: LlmDouble
) -> None:
    client = await _client(make, alice)
    double.push(reply("Aspirin relieves mild pain and reduces fever [1]. It also thins the blood [1].", chunks=4))
    response = await client.post("/api/chat", json={"message": "What does aspirin do?"})
    events = sse_events(response.text)
    tokens = [data["text"] for name, data in events if name == "token"]
    assert len(tokens) == 4
    assert "".join(tokens) == "Aspirin relieves mild pain and reduces fever [1]. It also thins the blood [1]."
    citations = dict(events[-2][1])
    assert [s["supported"] for s in citations["sentences"]] == [True, True]
    assert citations["citations"][0]["n"] == 1 and citations["citations"][0]["path"] == "aspirin.md"
    done = events[-1][1]
    assert done["model"] == "test-model" and done["usage"]["prompt_tokens"] > 0
    expected = (done["usage"]["prompt_tokens"] * 2.0 + done["usage"]["completion_tokens"] * 10.0) / 1e6
    assert done["usage"]["cost"] == pytest.approx(expected)
    assert done["timings"]["ttft_ms"] > 0

    system, messages = _prompt_of(double)
    assert system == SYSTEM_PROMPT
    question = messages[-1]["content"]
    assert question.startswith("Sources:\n\n[1] Aspirin") and question.endswith("Question: What does aspirin do?")
    assert "\n[2] " in question  # every source starts on its own line with its number
    assert API_KEY in json.dumps(double.generations[-1].headers)


async def test_an_unsupported_sentence_is_flagged_and_an_uncited_one_is_null(
    make: Factory, alice: User, double: LlmDouble
) -> None:
    client = await _client(make, alice)
    double.push(reply("Aspirin reduces fever [1]. The moon is made of green cheese [1]. Caffeine is a stimulant."))
    body = (await client.post("/api/chat", json={"message": "What does aspirin do?", "stream": False})).json()
    assert [(s["supported"], s["factual"]) for s in body["sentences"]] == [(True, True), (False, True), (None, True)]


async def test_a_model_that_ignores_the_citation_format_still_answers(
    make: Factory, alice: User, double: LlmDouble
) -> None:
    client = await _client(make, alice)
    double.push(reply("Aspirin reduces fever, according to source one (see above)."))
    response = await client.post("/api/chat", json={"message": "What does aspirin do?", "stream": False})
    assert response.status_code == 200
    body = response.json()
    assert body["citations"] == [] and [s["supported"] for s in body["sentences"]] == [None]


async def test_a_failing_model_ends_with_an_error_and_an_extractive_answer(
    make: Factory, alice: User, double: LlmDouble
) -> None:
    client = await _client(make, alice)
    double.set_default(fail(500, "upstream exploded"))
    events = sse_events((await client.post("/api/chat", json={"message": "What does aspirin do?"})).text)
    names = [name for name, _ in events]
    assert names[0] == "error" and names[-2:] == ["citations", "done"]
    detail = events[0][1]["detail"]
    assert "upstream exploded" in detail and API_KEY not in detail
    answer = "".join(data["text"] for name, data in events if name == "token")
    assert answer.startswith(FALLBACK_INTRO) and "[1]" in answer
    assert events[-1][1]["model"] == "extractive"
    assert len(double.generations) == 2  # the first try and one retry (MEMEX_LLM_MAX_RETRIES=1)

    stored = (await client.get(f"/api/conversations/{events[-1][1]['conversation_id']}")).json()
    assert stored["messages"][1]["error"] == detail and stored["messages"][1]["content"] == answer


async def test_a_model_that_never_answers_times_out_into_the_fallback(
    make: Factory, alice: User, double: LlmDouble
) -> None:
    client = await _client(make, alice)
    double.set_default(hang())
    body = (await client.post("/api/chat", json={"message": "What does aspirin do?", "stream": False})).json()
    assert "did not" in body["error"] and body["answer"].startswith(FALLBACK_INTRO)
    await double.wait_for(lambda d: d.active == 0, timeout=5, what="the hung request to be closed")


async def test_a_rate_limit_before_the_first_token_is_retried(make: Factory, alice: User, double: LlmDouble) -> None:
    client = await _client(make, alice)
    double.push(fail(429, "slow down", headers={"retry-after-ms": "10"}))
    double.push(reply("Coffee keeps people awake [1]."))
    body = (await client.post("/api/chat", json={"message": "What does coffee do?", "stream": False})).json()
    assert body["answer"] == "Coffee keeps people awake [1]." and "error" not in body


async def test_a_follow_up_is_rewritten_into_a_standalone_question(
    make: Factory, alice: User, double: LlmDouble
) -> None:
    client = await _client(make, alice)
    first = (await client.post("/api/chat", json={"message": "What does aspirin do?", "stream": False})).json()
    double.push(reply("What are the side effects of aspirin?"))  # the rewrite
    double.push(reply("It can cause stomach bleeding [1]."))
    body = (
        await client.post(
            "/api/chat",
            json={"message": "and the bad ones?", "conversation_id": first["conversation_id"], "stream": False},
        )
    ).json()
    assert body["citations"][0]["heading"].endswith("Side effects")
    rewrite = double.generations[-2]
    assert "standalone" in json.dumps(rewrite.body)
    _, messages = _prompt_of(double)
    # The history goes with the question: the first turn, then the new question with its sources.
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[0]["content"] == "What does aspirin do?" and messages[1]["content"] == first["answer"]


async def test_readiness_calls_the_model_and_caches_the_answer(make: Factory, double: LlmDouble) -> None:
    anon = make.client()
    first = (await anon.get("/api/health/ready")).json()["components"]["llm"]
    assert first["ok"] is True and "test-model" in first["detail"]
    calls = len(double.requests)
    assert (await anon.get("/api/health/ready")).status_code == 200
    assert len(double.requests) == calls  # cached (MEMEX_LLM_HEALTH_CACHE_SECONDS)
