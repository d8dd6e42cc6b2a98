"""`create_app(settings)`: the FastAPI application, with no import-time state."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from memex.api import errors
from memex.runtime import Runtime, open_runtime
from memex.settings import Settings


def create_app(settings: Settings, *, runtime: Runtime | None = None) -> FastAPI:
    """Build the app; it opens its own runtime at start-up unless one is handed in (tests, `memex serve`)."""

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
    )
    app.state.settings = settings
    errors.install(app)
    from memex.api.routes import health

    app.include_router(health.router)
    return app
