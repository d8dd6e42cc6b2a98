"""The chat model and Redis, pointed at ports where nothing listens."""

from __future__ import annotations

import socket

from memex.doctor import services
from memex.doctor.models import Severity
from tests.doctor.conftest import MakeContext, only
from tests.doubles.openai_server import OpenAIDouble


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_unreachable_chat_model_is_high(offline_context: MakeContext) -> None:
    ctx = offline_context(
        llm_provider="openai", llm_model="llama3.1", llm_base_url=f"http://127.0.0.1:{_closed_port()}/v1"
    )
    finding = only(await services.llm(ctx), "llm.reachable")
    assert finding.severity is Severity.high and "MEMEX_LLM_BASE_URL" in finding.fix


async def test_misconfigured_chat_model_is_high(offline_context: MakeContext) -> None:
    finding = only(await services.llm(offline_context(llm_provider="openai")), "llm.config")
    assert finding.severity is Severity.high and "MEMEX_LLM_MODEL" in finding.found


async def test_reachable_chat_model(offline_context: MakeContext, openai_double: OpenAIDouble) -> None:
    base = openai_double.base_url
    finding = only(
        await services.llm(offline_context(llm_provider="openai", llm_model="test-model", llm_base_url=base)),
        "llm.reachable",
    )
    assert finding.severity is Severity.info


async def test_unreachable_redis_is_medium(offline_context: MakeContext) -> None:
    ctx = offline_context(redis_url=f"redis://127.0.0.1:{_closed_port()}/0")
    assert only(await services.redis_check(ctx), "redis.reachable").severity is Severity.medium
