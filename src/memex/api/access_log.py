"""One structured log line per request: id, client, user, KB, route, status, latency. Secrets never reach it."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable

import structlog
from fastapi import FastAPI, Request, Response
from starlette.types import Scope

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


def route_template(scope: Scope, root_path: str) -> str:
    """The route a request matched, as declared ("/api/kbs/{kb}"); a mount's path; else "unmatched".

    Metrics are labelled with it, so it must never be the requested path, which anyone can make unique."""
    route = scope.get("route")
    if route is not None and getattr(route, "path", None):
        return str(route.path)
    mounted = str(scope.get("root_path", ""))
    if len(mounted) > len(root_path) and mounted.startswith(root_path):
        return mounted[len(root_path) :]
    return "unmatched"


def install(app: FastAPI) -> None:
    @app.middleware("http")
    async def access_log(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        request_id = request_id_of(request)
        ip = request.client.host if request.client else None
        started = time.perf_counter()
        root_path = request.scope.get("root_path", "")  # before routing: a mount appends its own path to it
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
            seconds = time.perf_counter() - started
            latency_ms = round(seconds * 1000, 2)
            request.app.state.runtime.metrics.request(
                method=request.method, route=route_template(request.scope, root_path), status=status, seconds=seconds
            )
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
