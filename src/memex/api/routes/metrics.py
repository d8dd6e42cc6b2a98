"""`GET /metrics`: the Prometheus exposition, for loopback callers or those with MEMEX_METRICS_TOKEN.

Anyone else gets the 404 of a route that does not exist. When a token is set it is required from every caller,
loopback included: behind a reverse proxy on the same host every request comes from loopback. A request that
carries forwarding headers came through a proxy, so it is never taken for a local one.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress

from fastapi import APIRouter, FastAPI, Request, Response

from memex.api import errors
from memex.api.deps import RuntimeDep, SettingsDep
from memex.errors import NotFound
from memex.runtime import Runtime
from memex.settings import Settings

PATH = "/metrics"
_FORWARDING_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")

router = APIRouter()


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def may_scrape(request: Request, settings: Settings) -> bool:
    """Whether this caller may read the metrics (see the module docstring)."""
    if settings.metrics_token is not None:
        scheme, _, sent = request.headers.get("authorization", "").partition(" ")
        # Digests have one length, so the comparison takes the same time whatever was sent.
        expected = _digest(settings.metrics_token.get_secret_value())
        return scheme.lower() == "bearer" and hmac.compare_digest(_digest(sent.strip()), expected)
    if any(name in request.headers for name in _FORWARDING_HEADERS):
        return False
    try:
        return request.client is not None and ipaddress.ip_address(request.client.host).is_loopback
    except ValueError:  # not an IP address (a Unix socket, a test client's name)
        return False


@router.get(PATH, include_in_schema=False)
async def metrics(request: Request, runtime: RuntimeDep, settings: SettingsDep) -> Response:
    """The process's metrics in Prometheus's text format (or OpenMetrics, when the scraper asks for it)."""
    if not runtime.metrics.enabled or not may_scrape(request, settings):
        raise NotFound("Not Found")
    body, content_type = await runtime.metrics.exposition(runtime.engine, accept=request.headers.get("accept", ""))
    return Response(body, headers={"Content-Type": content_type})


def create_metrics_app(runtime: Runtime) -> FastAPI:
    """An app serving /metrics alone, with the same access rule: for `memex worker --metrics-port`."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.state.runtime = runtime
    app.state.settings = runtime.settings
    errors.install(app)
    app.include_router(router)
    return app
