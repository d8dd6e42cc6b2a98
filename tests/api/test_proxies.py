"""Behind a TLS-terminating proxy: X-Forwarded-Proto and X-Forwarded-For are believed from the addresses in
MEMEX_TRUSTED_PROXIES only; from anyone else they change neither the cookies nor the client address."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from memex.accounts.models import User
from memex.api.app import create_app
from memex.runtime import Runtime
from memex.settings import Settings
from tests.factories import BASE_URL, PASSWORD

PROXY = "10.1.2.3"  # in the trusted network below
STRANGER = "198.51.100.7"  # connects directly, claiming to be a proxy
FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.50"}

ClientFor = Callable[[FastAPI, str], httpx.AsyncClient]


@pytest.fixture
async def client_for() -> AsyncIterator[ClientFor]:
    opened: list[httpx.AsyncClient] = []

    def make(app: FastAPI, address: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(address, 40000))
        opened.append(httpx.AsyncClient(transport=transport, base_url=BASE_URL))
        return opened[-1]

    yield make
    for client in opened:
        await client.aclose()


def _app(settings: Settings, runtime: Runtime, proxies: list[str]) -> FastAPI:
    return create_app(settings.model_copy(update={"trusted_proxies": proxies}), runtime=runtime)


async def _login(client: httpx.AsyncClient, email: str, **headers: str) -> httpx.Response:
    response = await client.post("/api/auth/login", json={"email": email, "password": PASSWORD}, headers=headers)
    assert response.status_code == 200, response.text
    return response


def _all_secure(response: httpx.Response) -> bool:
    cookies = response.headers.get_list("set-cookie")
    assert len(cookies) == 2
    return all("; secure" in cookie.lower() for cookie in cookies)


async def _last_login_ip(runtime: Runtime) -> str:
    async with runtime.engine.connect() as conn:
        query = "SELECT ip FROM audit_log WHERE action = 'login' ORDER BY id DESC LIMIT 1"
        return str((await conn.execute(sa.text(query))).scalar_one())


async def test_a_trusted_proxy_makes_cookies_secure_and_names_the_client(
    settings: Settings, runtime: Runtime, client_for: ClientFor, alice: User
) -> None:
    app = _app(settings, runtime, ["10.0.0.0/8"])
    response = await _login(client_for(app, PROXY), alice.email, **FORWARDED)
    assert _all_secure(response)
    assert await _last_login_ip(runtime) == "203.0.113.50"
    # Without the header the proxy speaks plain http: no Secure (the public URL is not https here).
    assert not _all_secure(await _login(client_for(app, PROXY), alice.email))


async def test_forwarded_headers_from_anyone_else_are_ignored(
    settings: Settings, runtime: Runtime, client_for: ClientFor, alice: User
) -> None:
    for proxies in (["10.0.0.0/8"], [], ["127.0.0.1", "::1"]):
        app = _app(settings, runtime, proxies)
        response = await _login(client_for(app, STRANGER), alice.email, **FORWARDED)
        assert not _all_secure(response), proxies
        assert await _last_login_ip(runtime) == STRANGER, proxies


async def test_a_forged_client_address_does_not_escape_the_login_limit(
    settings: Settings, runtime: Runtime, client_for: ClientFor, alice: User
) -> None:
    runtime.settings = runtime.settings.model_copy(update={"rate_limit_login": "3/day"})
    app = _app(settings, runtime, ["10.0.0.0/8"])
    stranger = client_for(app, STRANGER)
    statuses = [
        (
            await stranger.post(
                "/api/auth/login",
                json={"email": alice.email, "password": PASSWORD},
                headers={"X-Forwarded-For": f"192.0.2.{n}"},
            )
        ).status_code
        for n in range(5)
    ]
    assert statuses == [200, 200, 200, 429, 429]
    # Through the trusted proxy each client counts on its own.
    proxy = client_for(app, PROXY)
    for n in range(5):
        await _login(proxy, alice.email, **{"X-Forwarded-For": f"192.0.2.{n}"})


async def test_the_default_trusts_a_proxy_on_the_same_machine(
    runtime: Runtime, app: FastAPI, client_for: ClientFor, alice: User
) -> None:
    assert runtime.settings.trusted_proxies == ["127.0.0.1", "::1"]
    assert _all_secure(await _login(client_for(app, "127.0.0.1"), alice.email, **FORWARDED))
    assert await _last_login_ip(runtime) == "203.0.113.50"


def test_trusted_proxies_are_addresses_or_networks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMEX_TRUSTED_PROXIES", "10.0.0.7/8, 192.168.1.4,[::1], 2001:db8::/32")
    assert Settings().trusted_proxies == ["10.0.0.0/8", "192.168.1.4", "::1", "2001:db8::/32"]
    monkeypatch.setenv("MEMEX_TRUSTED_PROXIES", "")
    assert Settings().trusted_proxies == []
    monkeypatch.setenv("MEMEX_TRUSTED_PROXIES", "proxy.internal")
    with pytest.raises(ValueError, match=r"'proxy\.internal' is not an IP address or network"):
        Settings()
