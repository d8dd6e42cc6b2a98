"""With MEMEX_AUTH=false every request acts as the admin, so a page on another site must not reach the server:
only loopback Host names are answered (no DNS rebinding), and cross-site writes are refused."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from memex.accounts.models import User
from memex.api.app import create_app
from memex.runtime import Runtime
from memex.settings import Settings
from tests.factories import Factory

LOCAL = "http://localhost:8420"
CROSS_SITE = {
    "detail": "cross-site request refused: authentication is off, so only this server's own pages (and "
    "MEMEX_CORS_ORIGINS) may change anything"
}


@pytest.fixture
def auth_off(settings: Settings, runtime: Runtime, admin: User) -> FastAPI:
    return create_app(settings.model_copy(update={"auth": False}), runtime=runtime)


@pytest.fixture
async def local(auth_off: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=auth_off), base_url=LOCAL) as client:
        yield client


async def test_only_loopback_host_names_are_answered(auth_off: FastAPI) -> None:
    for base_url in (LOCAL, "http://127.0.0.1:8420", "http://[::1]:8420", "http://localhost"):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=auth_off), base_url=base_url) as client:
            assert (await client.get("/api/auth/me")).status_code == 200, base_url
    # A page of evil.example whose name now resolves to 127.0.0.1 (DNS rebinding) sends its own name as Host.
    for base_url, host in (
        ("http://evil.example:8420", "evil.example"),
        ("http://10.0.0.5:8420", "10.0.0.5"),
        ("http://localhost.evil.example", "localhost.evil.example"),
    ):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=auth_off), base_url=base_url) as client:
            for path in ("/api/auth/me", "/api/health", "/metrics"):
                refused = await client.get(path)
                assert refused.status_code == 400, (base_url, path)
                assert refused.json() == {
                    "detail": "authentication is off, so this server answers only for localhost, 127.0.0.1, [::1] "
                    f"and MEMEX_ALLOWED_HOSTS, not for the host {host!r}"
                }
            assert (await client.post("/api/kbs", json={"name": "rebound"})).status_code == 400


async def test_listed_hosts_are_answered_too(settings: Settings, runtime: Runtime, admin: User) -> None:
    app = create_app(settings.model_copy(update={"auth": False, "allowed_hosts": ["memex.lan"]}), runtime=runtime)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://memex.lan:8420") as client:
        assert (await client.get("/api/auth/me")).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "http://localhost:3000"},  # same site, another origin
        {"Origin": "null"},  # a sandboxed frame, or a form from a page sent with no referrer
        {"Referer": "https://evil.example/form.html"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "cross-site", "Origin": LOCAL},
    ],
)
async def test_cross_site_writes_are_refused(local: httpx.AsyncClient, headers: dict[str, str]) -> None:
    kb = (await local.post("/api/kbs", json={"name": "mine"})).json()["id"]
    for method, path, body in (
        ("POST", "/api/kbs", {"name": "planted"}),
        ("PATCH", f"/api/kbs/{kb}", {"name": "renamed"}),
        ("DELETE", f"/api/kbs/{kb}", None),
        ("POST", "/api/admin/users", {"email": "intruder@example.com", "is_admin": True}),
        ("PUT", "/api/kbs", None),
    ):
        refused = await local.request(method, path, json=body, headers=headers)
        assert refused.status_code == 403, (method, path)
        assert refused.json() == CROSS_SITE
    names = [item["name"] for item in (await local.get("/api/kbs", headers=headers)).json()]  # reads are fine
    assert "mine" in names and "planted" not in names and "renamed" not in names


async def test_own_pages_and_clients_without_a_browser_may_write(
    local: httpx.AsyncClient, settings: Settings, runtime: Runtime, admin: User
) -> None:
    for n, headers in enumerate(
        (
            {},  # the CLI, curl, scripts: no Origin, no Referer
            {"Origin": LOCAL, "Sec-Fetch-Site": "same-origin"},
            {"Referer": f"{LOCAL}/kbs"},
            {"Origin": "http://LOCALHOST:8420"},
        )
    ):
        assert (await local.post("/api/kbs", json={"name": f"kb {n}"}, headers=headers)).status_code == 201
    listed = create_app(
        settings.model_copy(update={"auth": False, "cors_origins": ["http://localhost:3000"]}), runtime=runtime
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=listed), base_url=LOCAL) as client:
        allowed = await client.post(
            "/api/kbs", json={"name": "from the dev server"}, headers={"Origin": "http://localhost:3000"}
        )
        assert allowed.status_code == 201


async def test_with_authentication_on_api_keys_may_write_from_anywhere(make: Factory, alice: User) -> None:
    """The check is for the auth-off mode: otherwise a cookie write needs the CSRF token, and a key is no ambient
    credential a page could borrow."""
    _, key = await make.key(alice)
    client = make.client(key=key, base_url="http://memex.example.com")
    written = await client.post("/api/kbs", json={"name": "from a tool"}, headers={"Origin": "https://tool.example"})
    assert written.status_code == 201
