"""One structured log line per request: id, client, user, KB, route, status, latency. Secrets never reach it."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable

import structlog
from fastapi import FastAPI, Request, Response

from memex import origin
from memex.settings import Settings

log = structlog.get_logger("memex.access")

REQUEST_ID_HEADER = "X-Request-ID"


def request_id_of(request: Request) -> str:
    """The caller's (a proxy's) request id when it looks like one, else a new one."""
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    # Accept a proxy's id only if it looks like one; anything else could be used to forge log lines.
    return incoming if 0 < len(incoming) <= 64 and incoming.replace("-", "").isalnum() else uuid.uuid4().hex


def _kb_of(request: Request) -> str | None:
    """The knowledge base a request names, in its path or its query (`kb`, possibly repeated)."""
    named = request.path_params.get("kb") or request.query_params.getlist("kb")
    if isinstance(named, list):
        return ",".join(named)[:400] or None
    return str(named)[:400]


def install(app: FastAPI) -> None:
    @app.middleware("http")
    async def access_log(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        request_id = request_id_of(request)
        ip = request.client.host if request.client else None
        started = time.perf_counter()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        status = 500
        try:
            with origin.bound(origin.Origin(request_id=request_id, ip=ip)):
                response = await call_next(request)
            status = response.status_code
            response.headers[REQUEST_ID_HEADER] = request_id
            return response
        finally:
            route = request.scope.get("route")
            auth = getattr(request.state, "memex_auth", None)
            actor = getattr(auth, "actor", None)
            latency_ms = round((time.perf_counter() - started) * 1000, 2)
            fields = {
                "method": request.method,
                "route": getattr(route, "path", request.url.path),
                "status": status,
                "latency_ms": latency_ms,
                "user": str(actor.user_id) if actor is not None and actor.user_id else None,
                "kb": _kb_of(request),
                "ip": ip,
                "via": getattr(auth, "via", None),
            }
            log.info("request", **fields)
            settings: Settings = request.app.state.settings
            if settings.slow_request_ms and latency_ms > settings.slow_request_ms:
                log.warning("slow_request", threshold_ms=settings.slow_request_ms, **fields)
            structlog.contextvars.unbind_contextvars("request_id")
