"""Liveness and readiness probes (public)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from memex.api.deps import RuntimeDep
from memex.chat import service as chat
from memex.db import store as db_store
from memex.errors import ServiceUnavailable
from memex.jobs import store as jobs_store

router = APIRouter(prefix="/api/health", tags=["health"])


@router.get("")
async def live() -> dict[str, str]:
    """Liveness: the process is up and serving."""
    return {"status": "ok"}


async def _check(name: str, probe: Any) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        detail = await asyncio.wait_for(probe(), timeout=5)
        ok = True
    except ServiceUnavailable as exc:
        detail, ok = exc.message, False
    except Exception as exc:  # a probe reports any failure as not ready, whatever raised it
        detail, ok = f"{type(exc).__name__}: {exc}", False
    return {"name": name, "ok": ok, "latency_ms": round((time.perf_counter() - started) * 1000, 2), "detail": detail}


@router.get("/ready")
async def ready(runtime: RuntimeDep) -> JSONResponse:
    """Readiness: database, embedder, job queue, chat model and Redis report ok, latency and detail; 503 if a
    required one fails (the chat model and Redis are not required)."""

    async def database() -> str:
        async with runtime.engine.connect() as conn:
            await db_store.ping(conn)
        return "reachable"

    async def embedder() -> str:
        emb = await runtime.load_embedder()
        await asyncio.to_thread(emb.embed_query, "readiness probe")
        return f"{emb.name} ({emb.dimension} dimensions)"

    async def jobs() -> str:
        async with runtime.engine.connect() as conn:
            queued, running = await jobs_store.counts(conn)
        return f"{queued} queued, {running} running"

    async def llm() -> str:
        ok, detail = await chat.llm_status(runtime)
        if not ok:
            raise ServiceUnavailable(detail)
        return detail

    async def redis() -> str:
        return await runtime.rate_limits.ping()

    checks = await asyncio.gather(
        _check("database", database),
        _check("embedder", embedder),
        _check("jobs", jobs),
        _check("llm", llm),
        _check("redis", redis),
    )
    # Without the model, chat still answers (extractively); without Redis, each instance counts its own rate
    # limits: neither makes the server unready.
    for check in checks:
        check["required"] = check["name"] not in ("llm", "redis")
    ok = all(c["ok"] for c in checks if c["required"])
    body = {"status": "ok" if ok else "unavailable", "components": {c.pop("name"): c for c in checks}}
    return JSONResponse(body, status_code=200 if ok else 503)
