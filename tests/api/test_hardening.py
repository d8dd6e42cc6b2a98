"""Hardening: CORS allowlist, Host checking, security headers, size limits, refusals at start, database outages."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from psycopg import sql
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from memex.accounts.models import User
from memex.accounts.service import check_auth_config
from memex.api.app import create_app
from memex.api.security import MAX_HEADER_BYTES
from memex.cli.main import EXIT_FATAL  # (before cli.serve, which it registers)
from memex.cli.serve import MAX_REQUEST_HEAD_BYTES, _Server, server_config
from memex.errors import ConfigurationError
from memex.runtime import Runtime
from memex.settings import Settings
from tests.factories import BASE_URL, PASSWORD, Factory
from tests.integration.test_serve import free_port, memex_env

ORIGIN = "https://app.example.com"


def _client(app: FastAPI, base_url: str = BASE_URL) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)


def _app(settings: Settings, runtime: Runtime, **changes: object) -> FastAPI:
    return create_app(settings.model_copy(update=changes), runtime=runtime)


# CORS


async def test_a_listed_origin_passes_the_preflight_with_credentials(settings: Settings, runtime: Runtime) -> None:
    async with _client(_app(settings, runtime, cors_origins=[ORIGIN])) as client:
        preflight = await client.options(
            "/api/kbs",
            headers={
                "Origin": ORIGIN,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type, x-csrf-token",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == ORIGIN
        assert preflight.headers["access-control-allow-credentials"] == "true"
        assert "POST" in preflight.headers["access-control-allow-methods"]

        actual = await client.get("/api/health", headers={"Origin": ORIGIN})
        assert actual.headers["access-control-allow-origin"] == ORIGIN
        assert "x-request-id" in actual.headers["access-control-expose-headers"].lower()
        assert "origin" in actual.headers["vary"].lower()


async def test_an_unlisted_origin_is_refused(settings: Settings, runtime: Runtime) -> None:
    for origins in ([ORIGIN], []):
        async with _client(_app(settings, runtime, cors_origins=origins)) as client:
            preflight = await client.options(
                "/api/kbs", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
            )
            assert preflight.status_code == 400
            assert preflight.json() == {
                "detail": "CORS preflight refused (origin): the origin must be listed in MEMEX_CORS_ORIGINS"
            }
            assert "access-control-allow-origin" not in preflight.headers
            actual = await client.get("/api/health", headers={"Origin": "https://evil.example"})
            assert "access-control-allow-origin" not in actual.headers


def test_cors_origins_refuse_a_wildcard_and_take_commas(monkeypatch: pytest.MonkeyPatch) -> None:
    for value in ("*", '["*"]', "https://*.example.com"):
        monkeypatch.setenv("MEMEX_CORS_ORIGINS", value)
        with pytest.raises(ValueError, match="MEMEX_CORS_ORIGINS cannot contain '\\*': credentials are never shared"):
            Settings()
    monkeypatch.setenv("MEMEX_CORS_ORIGINS", "app.example.com")
    with pytest.raises(ValueError, match=r"'app\.example\.com' is not an origin: write it as scheme://host"):
        Settings()
    monkeypatch.setenv("MEMEX_CORS_ORIGINS", "https://App.example.com/, http://localhost:3000")
    assert Settings().cors_origins == [ORIGIN, "http://localhost:3000"]


# Host checking


async def test_unknown_hosts_are_refused(settings: Settings, runtime: Runtime) -> None:
    app = _app(settings, runtime, allowed_hosts=["memex.example.com", "*.corp.example"])
    for base_url in (
        "http://memex.example.com",
        "https://a.corp.example:8443",
        "http://127.0.0.1:8420",
        "http://[::1]",
    ):
        async with _client(app, base_url) as client:
            assert (await client.get("/api/auth/me")).status_code == 401, base_url  # past the Host check
    for base_url in ("http://evil.example", "http://corp.example", "http://10.1.2.3:8420"):
        async with _client(app, base_url) as client:
            refused = await client.get("/api/auth/me")
            assert refused.status_code == 400, base_url
            host = base_url.split("//")[1].split(":")[0]
            assert refused.json() == {
                "detail": f"this server does not answer for the host {host!r}: add it to MEMEX_ALLOWED_HOSTS"
            }
            # Orchestrators probe the pod's IP: health answers whatever the Host.
            assert (await client.get("/api/health")).status_code == 200


async def test_any_host_is_answered_when_none_are_listed(settings: Settings, runtime: Runtime) -> None:
    async with _client(_app(settings, runtime), "http://whatever.example") as client:
        assert (await client.get("/api/auth/me")).status_code == 401


def test_allowed_hosts_are_names_without_scheme_or_port(monkeypatch: pytest.MonkeyPatch) -> None:
    for value in ("https://memex.example.com", "memex.example.com:8420"):
        monkeypatch.setenv("MEMEX_ALLOWED_HOSTS", value)
        with pytest.raises(ValueError, match=r"is not a host name: list names like memex\.example\.com"):
            Settings()
    monkeypatch.setenv("MEMEX_ALLOWED_HOSTS", "Memex.example.com,*.corp.example")
    assert Settings().allowed_hosts == ["memex.example.com", "*.corp.example"]


# Security headers and cookies


async def test_api_responses_carry_security_headers(anon: httpx.AsyncClient) -> None:
    for response in (await anon.get("/api/health"), await anon.get("/api/kbs"), await anon.get("/nowhere")):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "same-origin"
        assert "camera=()" in response.headers["permissions-policy"]
        csp = response.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
        assert response.headers["cache-control"] == "no-store"
        assert "strict-transport-security" not in response.headers


async def test_pages_keep_their_csp_with_no_inline_script(anon: httpx.AsyncClient) -> None:
    for path in ("/", "/login", "/docs", "/static/search.js"):
        response = await anon.get(path)
        assert response.status_code == 200, path
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        csp = dict(part.strip().split(" ", 1) for part in response.headers["content-security-policy"].split(";"))
        assert "'unsafe-inline'" not in csp.get("script-src", csp["default-src"]), path
        assert csp["frame-ancestors"] == "'none'"
    docs = await anon.get("/docs")
    assert "<script>" not in docs.text and '<script src="/static/docs.js' in docs.text
    assert (await anon.get("/redoc")).status_code == 404


async def test_api_docs_need_no_internet(anon: httpx.AsyncClient) -> None:
    docs = await anon.get("/docs")
    assert "http://" not in docs.text and "https://" not in docs.text
    assert "https:" not in docs.headers["content-security-policy"]
    assets = re.findall(r'(?:src|href)="(/static/swagger/[^"]+)"', docs.text)
    assert sorted(assets) == ["/static/swagger/swagger-ui-bundle.js", "/static/swagger/swagger-ui.css"]
    for asset in assets:
        response = await anon.get(asset)
        assert response.status_code == 200 and len(response.content) > 10_000, asset
    bundle = (await anon.get("/static/swagger/swagger-ui-bundle.js")).text
    assert "SwaggerUIBundle" in bundle


async def test_https_public_url_adds_hsts_and_secure_cookies(
    settings: Settings, runtime: Runtime, make: Factory, alice: User
) -> None:
    async with _client(_app(settings, runtime, public_url="https://memex.example.com")) as client:
        response = await client.post("/api/auth/login", json={"email": alice.email, "password": "wrong password"})
        assert response.headers["strict-transport-security"] == "max-age=31536000"
        login = await client.post("/api/auth/login", json={"email": alice.email, "password": PASSWORD})
        cookies = login.headers.get_list("set-cookie")
        assert len(cookies) == 2 and all("; secure" in cookie.lower() for cookie in cookies)


# Size limits


async def test_a_body_over_the_limit_is_refused(make: Factory, alice: User) -> None:
    client = await make.as_user(alice)
    big = {"name": "x" * (1024 * 1024 + 1)}  # MEMEX_MAX_JSON_KB is 1024 by default
    declared = await client.post("/api/kbs", json=big)
    assert declared.status_code == 413
    assert declared.json() == {"detail": "the request body is larger than the limit of 1024 KiB (MEMEX_MAX_JSON_KB)"}

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: counted as it streams
        yield b'{"name": "'
        for _ in range(20):
            yield b"x" * 65536
        yield b'"}'

    streamed = await client.post("/api/kbs", content=chunked(), headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413 and streamed.json()["detail"].startswith("the request body is larger")
    assert (await client.post("/api/kbs", json={"name": "small"})).status_code == 201


async def test_headers_over_the_limit_are_refused(anon: httpx.AsyncClient) -> None:
    response = await anon.get("/api/health", headers={"X-Padding": "a" * MAX_HEADER_BYTES})
    assert response.status_code == 431
    assert response.json() == {"detail": "the request headers are larger than the limit of 32 KiB"}


async def _raw_request(port: int, request: bytes) -> tuple[bytes, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    response = await reader.read()
    writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    return head, body


async def test_a_request_head_over_the_server_limit_gets_431(settings: Settings, runtime: Runtime) -> None:
    """Past uvicorn's buffer the app never sees the request: `memex serve`'s protocol answers it."""
    served = settings.model_copy(update={"port": free_port(), "log_level": "WARNING"})
    server = _Server(server_config(create_app(served, runtime=runtime), served))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not task.done(), "uvicorn did not start"
            await asyncio.sleep(0.05)
        # Not finished by a blank line: the server reads it all, refuses it, and closes without a reset.
        huge = b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"a" * MAX_REQUEST_HEAD_BYTES
        head, body = await _raw_request(served.port, huge)
        assert head.startswith(b"HTTP/1.1 431 "), head
        assert body == b'{"detail": "the request line and headers are larger than the limit of 256 KiB"}'
        padded = b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"a" * 40_000 + b"\r\n\r\n"
        head, body = await _raw_request(served.port, padded)
        assert head.startswith(b"HTTP/1.1 431 ") and b"request headers are larger" in body
        head, _ = await _raw_request(served.port, b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ")
    finally:
        server.should_exit = True
        await task


# Refusals at start


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short1A!", "it has 8 characters, fewer than 12"),
        ("aaaaaaaaaaaaaaaa", "it uses fewer than 6 different characters"),
        ("123456789012345", "it has no letters"),
        ("Password12345!", "it is a common password or a placeholder"),
        ("ChangeMe-2024!!", "it is a common password or a placeholder"),
    ],
)
def test_a_weak_admin_password_is_refused_off_loopback(settings: Settings, password: str, reason: str) -> None:
    weak = settings.model_copy(update={"admin_password": SecretStr(password)})
    check_auth_config(weak)  # on loopback it is the operator's business
    with pytest.raises(ConfigurationError) as refused:
        check_auth_config(weak.model_copy(update={"host": "0.0.0.0"}))
    assert f"MEMEX_ADMIN_PASSWORD is too weak for a server listening on 0.0.0.0 ({reason})" in refused.value.message
    assert password not in refused.value.message


def test_a_strong_or_generated_admin_password_is_accepted(settings: Settings) -> None:
    public = settings.model_copy(update={"host": "0.0.0.0"})
    check_auth_config(public)
    check_auth_config(public.model_copy(update={"admin_password": SecretStr("correct horse battery staple")}))


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MEMEX_AUTH": "false"}, "MEMEX_AUTH=false is only allowed when the server listens on a loopback address"),
        ({"MEMEX_ADMIN_PASSWORD": "changeme"}, "MEMEX_ADMIN_PASSWORD is too weak for a server listening on 0.0.0.0"),
    ],
)
def test_serve_refuses_to_start_and_says_why(
    env: dict[str, str], message: str, tmp_path: Path, model_cache_dir: Path
) -> None:
    environment = memex_env("postgresql://nowhere.invalid/memex", tmp_path, model_cache_dir, **env)
    done = subprocess.run(
        [sys.executable, "-m", "memex", "serve", "--host", "0.0.0.0"], env=environment, capture_output=True, timeout=120
    )
    assert done.returncode == EXIT_FATAL
    assert message in " ".join(done.stderr.decode().split())
    assert "changeme" not in done.stderr.decode()


# Database outage


def _set_connections(pg_server_url: str, database_url: str, *, allowed: bool) -> None:
    """Stop (or restart) the test's database: refuse new connections and end the open ones."""
    name = make_url(database_url).database
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS {}").format(
                sql.Identifier(name), sql.SQL("true" if allowed else "false")
            )
        )
        if not allowed:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))


async def test_a_database_outage_answers_503_with_retry_after(
    pg_server_url: str, database_url: str, make: Factory, alice: User
) -> None:
    _, key = await make.key(alice)
    client = make.client(key=key)
    assert (await client.get("/api/kbs")).status_code == 200
    _set_connections(pg_server_url, database_url, allowed=False)
    try:
        for path in ("/api/kbs", "/api/search?q=quokka"):
            down = await client.get(path)
            assert down.status_code == 503, down.text
            assert down.headers["retry-after"] == "5"
            assert down.json() == {"detail": "the database is unavailable: try again in a few seconds"}
        assert (await client.get("/api/health")).status_code == 200  # the process itself is alive
        assert (await client.get("/api/health/ready")).status_code == 503
    finally:
        _set_connections(pg_server_url, database_url, allowed=True)
    assert (await client.get("/api/kbs")).status_code == 200  # and it recovers on its own
