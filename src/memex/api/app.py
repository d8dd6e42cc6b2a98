"""`create_app(settings)`: the FastAPI application, with no import-time state."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from memex.accounts.service import check_auth_config
from memex.api import access_log, auth, errors, security
from memex.runtime import Runtime, open_runtime
from memex.settings import Settings


def create_app(settings: Settings, *, runtime: Runtime | None = None) -> FastAPI:
    """Build the app; it opens its own runtime at start-up unless one is handed in (tests, `memex serve`)."""
    check_auth_config(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = runtime is None
        app.state.runtime = runtime or await open_runtime(settings)
        try:
            yield
        finally:
            if owned:
                await app.state.runtime.close()

    app = FastAPI(
        title="Memex",
        version="0.1.0",
        description="Self-hosted knowledge assistant: hybrid search and chat over your documents.",
        lifespan=lifespan,
        # The OpenAPI UI is served by routes/web.py, with no inline script (FastAPI's own page has some).
        docs_url=None,
        redoc_url=None,
        # Authenticated by default: routes outside auth.PUBLIC_PATHS need a session or an API key.
        dependencies=[Depends(auth.guard)],
    )
    app.state.settings = settings
    if runtime is not None:
        app.state.runtime = runtime  # usable without the lifespan too (httpx's ASGITransport runs none)
    errors.install(app)
    security.install(app, settings)  # inside the access log, so that its refusals are logged too
    access_log.install(app)
    security.trust_proxies(app, settings)  # outermost: the access log and every check see the client's address
    from memex.api.routes import admin, health, kbs, keys, metrics, oidc
    from memex.api.routes import auth as auth_routes

    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(auth_routes.router)
    app.include_router(oidc.router)
    app.include_router(keys.router)
    app.include_router(kbs.router)
    app.include_router(admin.router)
    from memex.api.routes import chat, documents, openai_compat, search

    app.include_router(documents.router)
    app.include_router(search.router)
    app.include_router(chat.router)
    app.include_router(openai_compat.router)
    from memex.api.routes import web
    from memex.mcp import http as mcp

    mcp.install(app)
    web.install(app)
    return app
