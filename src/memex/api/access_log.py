"""One structured log line per request: id, user, route, status, latency. Secrets never reach it."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable

import structlog
from fastapi import FastAPI, Request, Response

log = structlog.get_logger("memex.access")

REQUEST_ID_HEADER = "X-Request-ID"


def install(app: FastAPI) -> None:
    @app.middleware("http")
    async def access_log(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        # Accept a proxy's id only if it looks like one; anything else could be used to forge log lines.
        request_id = incoming if 0 < len(incoming) <= 64 and incoming.replace("-", "").isalnum() else uuid.uuid4().hex
        started = time.perf_counter()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            response.headers[REQUEST_ID_HEADER] = request_id
            return response
        finally:
            route = request.scope.get("route")
            auth = getattr(request.state, "memex_auth", None)
            actor = getattr(auth, "actor", None)
            log.info(
                "request",
                method=request.method,
                route=getattr(route, "path", request.url.path),
                status=status,
                latency_ms=round((time.perf_counter() - started) * 1000, 2),
                user=str(actor.user_id) if actor is not None and actor.user_id else None,
                via=getattr(auth, "via", None),
            )
            structlog.contextvars.unbind_contextvars("request_id")
