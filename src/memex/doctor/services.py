"""Services outside the database: the chat model, and Redis for rate limits shared between instances."""

from __future__ import annotations

import asyncio

import redis.asyncio
import redis.exceptions

from memex.chat.llm import build_llm
from memex.chat.llm.base import LlmError
from memex.doctor import store
from memex.doctor.context import Context
from memex.doctor.models import Finding, Severity
from memex.errors import MemexError


async def llm(ctx: Context) -> list[Finding]:
    settings = ctx.settings
    if settings.llm_provider == "none":
        return [Finding(Severity.info, "llm.reachable", "no chat model configured: answers are extractive")]
    try:
        model = build_llm(settings)
    except MemexError as exc:
        return [Finding(Severity.high, "llm.config", f"the chat model is misconfigured: {exc.message}", exc.message)]
    assert model is not None
    try:
        # ping() is bounded (a few seconds, no retries); the outer limit only guards against a hung provider.
        async with asyncio.timeout(ctx.thresholds.probe_timeout_seconds * 3):
            detail = await model.ping()
    except (LlmError, TimeoutError) as exc:
        reason = exc.message if isinstance(exc, LlmError) else "no answer in time"
        return [
            Finding(
                Severity.high,
                "llm.reachable",
                f"the chat model does not answer: {reason}. Chat falls back to extractive answers.",
                "Check MEMEX_LLM_BASE_URL, MEMEX_LLM_MODEL and MEMEX_LLM_API_KEY, and that the model server is up "
                "and reachable from this machine.",
            )
        ]
    finally:
        await model.aclose()
    return [Finding(Severity.info, "llm.reachable", f"the chat model answers: {detail}")]


async def redis_check(ctx: Context) -> list[Finding]:
    settings = ctx.settings
    if settings.redis_url is not None:
        client = redis.asyncio.from_url(
            settings.redis_url.get_secret_value(),
            socket_connect_timeout=ctx.thresholds.probe_timeout_seconds,
            socket_timeout=ctx.thresholds.probe_timeout_seconds,
        )
        try:
            await client.ping()
        except (redis.exceptions.RedisError, OSError) as exc:
            return [
                Finding(
                    Severity.medium,
                    "redis.reachable",
                    f"Redis (MEMEX_REDIS_URL) does not answer: {type(exc).__name__}: {exc}. Each instance counts "
                    "rate limits on its own until it is back.",
                    "Check that Redis runs and is reachable from this machine, with the URL's password.",
                )
            ]
        finally:
            await client.aclose()
        return [Finding(Severity.info, "redis.reachable", "Redis answers: rate limits are shared between instances")]
    if settings.embedded or ctx.engine is None:
        return [Finding(Severity.info, "redis.shared", "no Redis: one machine, rate limits counted in process")]
    async with ctx.engine.connect() as conn:
        hosts = await store.client_hosts(conn)
    if hosts > 1:
        return [
            Finding(
                Severity.medium,
                "redis.shared",
                f"connections from {hosts} different hosts share this database but MEMEX_REDIS_URL is unset: if "
                f"several of them serve the API, each counts rate limits alone and a client gets up to {hosts}x "
                "the limit.",
                "Run Redis and set MEMEX_REDIS_URL (or MEMEX_REDIS_URL_FILE) on every API instance.",
                {"client_hosts": hosts},
            )
        ]
    return [
        Finding(
            Severity.info,
            "redis.shared",
            "MEMEX_REDIS_URL is unset with an external database: fine for one API instance; with several, each "
            "counts rate limits alone.",
            data={"client_hosts": hosts},
        )
    ]
