"""API fixtures: the app built on the test's runtime, reached in-process through httpx's ASGI transport."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from fastapi import FastAPI

from memex.accounts.models import User
from memex.api.app import create_app
from memex.runtime import Runtime
from memex.settings import Settings
from tests.factories import BASE_URL, Factory

ClientFrom = Callable[[str], httpx.AsyncClient]


@pytest.fixture
def app(settings: Settings, runtime: Runtime) -> FastAPI:
    # ASGITransport runs no lifespan, so the app is handed the test's runtime.
    return create_app(settings, runtime=runtime)


@pytest.fixture
async def make(runtime: Runtime, app: FastAPI) -> AsyncIterator[Factory]:
    factory = Factory(runtime=runtime, app=app)
    yield factory
    await factory.close()


@pytest.fixture
def anon(make: Factory) -> httpx.AsyncClient:
    """A client with no credentials."""
    return make.client()


@pytest.fixture
async def admin(make: Factory) -> User:
    return await make.user(email="root@example.com", admin=True)


@pytest.fixture
async def alice(make: Factory) -> User:
    return await make.user(email="alice@example.com")


@pytest.fixture
async def bob(make: Factory) -> User:
    return await make.user(email="bob@example.com")


@pytest.fixture
async def client_from(app: FastAPI) -> AsyncIterator[ClientFrom]:
    """Clients connecting from a given address, as separate machines would."""
    opened: list[httpx.AsyncClient] = []

    def make(address: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(address, 40000))
        opened.append(httpx.AsyncClient(transport=transport, base_url=BASE_URL))
        return opened[-1]

    yield make
    for client in opened:
        await client.aclose()
