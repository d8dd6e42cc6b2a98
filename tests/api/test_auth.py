"""Login, sessions, CSRF, lockout, disabled users, auth-off mode, first-start admin and admin routes."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from pydantic import SecretStr

from memex.accounts import service
from memex.accounts.models import User
from memex.api.app import create_app
from memex.api.auth import CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE
from memex.errors import ConfigurationError
from memex.runtime import Runtime
from memex.settings import Settings
from tests.factories import PASSWORD, Factory


def _cookie_headers(response: httpx.Response) -> dict[str, str]:
    found = {}
    for header in response.headers.get_list("set-cookie"):
        name = header.split("=", 1)[0]
        found[name] = header.lower()
    return found


async def _login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    return await client.post("/api/auth/login", json={"email": email, "password": password})


async def test_login_sets_a_hashed_session_and_csrf_cookies(make: Factory, alice: User, runtime: Runtime) -> None:
    client = make.client()
    response = await _login(client, "ALICE@example.com")  # emails match case-insensitively
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["user"]["email"] == "alice@example.com" and body["user"]["id"] == str(alice.id)
    cookies = _cookie_headers(response)
    session, csrf = cookies[SESSION_COOKIE], cookies[CSRF_COOKIE]
    assert "httponly" in session and "samesite=lax" in session and "path=/" in session and "secure" not in session
    assert "httponly" not in csrf and "samesite=lax" in csrf
    assert client.cookies[CSRF_COOKIE] == body["csrf_token"]

    token = client.cookies[SESSION_COOKIE]
    async with runtime.engine.connect() as conn:
        row = (await conn.execute(sa.text("SELECT token_hash, csrf_token, expires_at FROM sessions"))).one()
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest() and row.token_hash != token
    assert row.csrf_token == body["csrf_token"]
    hours = (row.expires_at - datetime.now(UTC)) / timedelta(hours=1)
    assert 23.9 < hours <= 24

    me = await client.get("/api/auth/me")
    assert me.status_code == 200
    assert me.json()["user"]["email"] == "alice@example.com"
    assert me.json()["csrf_token"] == body["csrf_token"] and me.json()["auth"] == "session"


async def test_login_over_https_marks_cookies_secure(make: Factory, alice: User) -> None:
    response = await _login(make.client(base_url="https://memex.test"), alice.email)
    assert all("secure" in header for header in _cookie_headers(response).values())


async def test_wrong_password_and_unknown_user_get_the_same_answer(anon: httpx.AsyncClient, alice: User) -> None:
    wrong = await _login(anon, alice.email, "not the password")
    unknown = await _login(anon, "nobody@example.com")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json() == {"detail": "invalid email or password"}


async def test_repeated_failures_make_the_address_wait_without_locking_the_account(make: Factory, alice: User) -> None:
    client = make.client()
    for _ in range(5):
        assert (await _login(client, alice.email, "wrong password")).status_code == 401
    waiting = await _login(client, alice.email, "wrong password")
    assert waiting.status_code == 429 and 0 < int(waiting.headers["retry-after"]) <= 30
    assert waiting.json()["detail"].startswith("too many failed logins for this account from your address")
    # Even the right password waits, from that address (tests/api/test_login_throttle.py: others do not).
    assert (await _login(client, alice.email)).status_code == 429


async def test_logout_revokes_the_session_server_side(make: Factory, alice: User) -> None:
    client = make.client()
    csrf = (await _login(client, alice.email)).json()["csrf_token"]
    token = client.cookies[SESSION_COOKIE]

    assert (await client.post("/api/auth/logout")).status_code == 403  # a cookie write needs the CSRF token
    response = await client.post("/api/auth/logout", headers={CSRF_HEADER: csrf})
    assert response.status_code == 204
    assert SESSION_COOKIE not in response.cookies or not response.cookies[SESSION_COOKIE]

    # The copied cookie no longer works anywhere.
    stolen = make.client()
    stolen.cookies.set(SESSION_COOKIE, token)
    after = await stolen.get("/api/auth/me")
    assert after.status_code == 401 and after.json() == {"detail": "session ended: log in again"}


async def test_cookie_writes_need_the_csrf_token_but_keys_do_not(make: Factory, alice: User) -> None:
    session = await make.session(alice)
    client = make.client()
    client.cookies.set(SESSION_COOKIE, session.token)

    missing = await client.post("/api/kbs", json={"name": "notes"})
    assert missing.status_code == 403 and "CSRF" in missing.json()["detail"]
    wrong = await client.post("/api/kbs", json={"name": "notes"}, headers={CSRF_HEADER: "guess"})
    assert wrong.status_code == 403
    assert (await client.get("/api/kbs")).status_code == 200  # reads need no token
    right = await client.post("/api/kbs", json={"name": "notes"}, headers={CSRF_HEADER: session.csrf_token})
    assert right.status_code == 201

    _, key = await make.key(alice)
    assert (await make.client(key=key).post("/api/kbs", json={"name": "more"})).status_code == 201


async def test_expired_session_is_refused(make: Factory, alice: User) -> None:
    session = await make.session(alice, hours=-1)
    response = await make.client(session=session).get("/api/auth/me")
    assert response.status_code == 401 and response.json() == {"detail": "session expired: log in again"}
    assert response.headers["www-authenticate"] == "Bearer"


async def test_unauthenticated_requests_are_refused_and_public_ones_are_not(anon: httpx.AsyncClient) -> None:
    response = await anon.get("/api/kbs")
    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication required: log in, or send 'Authorization: Bearer <api key>'."}
    assert (await anon.get("/api/health")).status_code == 200
    assert (await anon.get("/openapi.json")).status_code == 200
    anon.cookies.set(SESSION_COOKIE, "made-up")
    assert (await anon.get("/api/kbs")).json() == {"detail": "invalid session: log in again"}


async def test_disabled_users_cannot_log_in_and_lose_sessions_and_keys(
    make: Factory, admin: User, alice: User, runtime: Runtime
) -> None:
    session = await make.session(alice)
    _, key = await make.key(alice)
    root = await make.as_user(admin)
    response = await root.patch(f"/api/admin/users/{alice.id}", json={"is_active": False})
    assert response.status_code == 200 and response.json()["is_active"] is False

    login = await _login(make.client(), alice.email)  # answered like a wrong password: nothing to learn from it
    assert login.status_code == 401 and login.json() == {"detail": "invalid email or password"}
    for client in (make.client(session=session), make.client(key=key)):
        refused = await client.get("/api/kbs")
        assert refused.status_code == 401 and "disabled" in refused.json()["detail"]

    assert (await root.patch(f"/api/admin/users/{alice.id}", json={"is_active": True})).status_code == 200
    assert (await make.client(key=key).get("/api/kbs")).status_code == 200


async def test_every_user_gets_a_personal_kb(make: Factory, alice: User) -> None:
    kbs = (await (await make.as_user(alice)).get("/api/kbs")).json()
    assert [(kb["name"], kb["role"], kb["is_personal"], kb["document_count"]) for kb in kbs] == [
        ("Personal", "owner", True, 0)
    ]


async def test_auth_off_acts_as_the_first_admin(
    settings: Settings, runtime: Runtime, make: Factory, admin: User
) -> None:
    await make.user(email="later-admin@example.com", admin=True)
    app = create_app(settings.model_copy(update={"auth": False}), runtime=runtime)
    # Only loopback names are answered then (tests/api/test_auth_off.py).
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost:8420") as client:
        me = await client.get("/api/auth/me")
        assert me.status_code == 200 and me.json()["user"]["email"] == admin.email and me.json()["auth"] == "disabled"
        assert (await client.post("/api/kbs", json={"name": "no login needed"})).status_code == 201


def test_auth_off_is_refused_off_loopback(settings: Settings) -> None:
    for host in ("127.0.0.1", "::1", "localhost"):
        create_app(settings.model_copy(update={"auth": False, "host": host}))
    with pytest.raises(ConfigurationError, match="MEMEX_AUTH=false is only allowed"):
        create_app(settings.model_copy(update={"auth": False, "host": "0.0.0.0"}))


async def test_ensure_admin_creates_one_admin_with_a_generated_password(runtime: Runtime, make: Factory) -> None:
    results = await asyncio.gather(service.ensure_admin(runtime), service.ensure_admin(runtime))
    created = [r for r in results if r is not None]
    assert len(created) == 1
    first = created[0]
    assert first.email == "admin@localhost" and first.password and len(first.password) >= 16
    assert first.password in "\n".join(first.lines())
    assert await service.ensure_admin(runtime) is None

    login = await _login(make.client(), "admin@localhost", first.password)
    assert login.status_code == 200 and login.json()["user"]["is_admin"] is True
    other = await service.ensure_admin(runtime)
    assert other is None


async def test_ensure_admin_uses_the_configured_email_and_password(
    settings: Settings, runtime: Runtime, app: FastAPI
) -> None:
    configured = settings.model_copy(
        update={"admin_email": "boss@example.com", "admin_password": SecretStr("from the environment")}
    )
    runtime.settings = configured
    result = await service.ensure_admin(runtime)
    assert result is not None and result.email == "boss@example.com" and result.password is None
    assert "from the environment" not in "\n".join(result.lines())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://memex.test") as client:
        assert (await _login(client, "boss@example.com", "from the environment")).status_code == 200


async def test_admin_routes_are_for_admins_only(make: Factory, admin: User, alice: User) -> None:
    user_client = await make.as_user(alice)
    assert (await user_client.get("/api/admin/users")).status_code == 403
    assert (await user_client.post("/api/admin/users", json={"email": "x@example.com"})).status_code == 403

    root = await make.as_user(admin)
    created = await root.post("/api/admin/users", json={"email": "new@example.com"})
    assert created.status_code == 201
    password = created.json()["password"]
    assert password and len(password) >= 16
    assert (await _login(make.client(), "new@example.com", password)).status_code == 200
    given = await root.post(
        "/api/admin/users", json={"email": "given@example.com", "password": "chosen password", "is_admin": True}
    )
    assert given.status_code == 201 and given.json()["password"] is None and given.json()["user"]["is_admin"] is True

    duplicate = await root.post("/api/admin/users", json={"email": "NEW@example.com"})
    assert duplicate.status_code == 409
    short = await root.post("/api/admin/users", json={"email": "short@example.com", "password": "short"})
    assert short.status_code == 422

    emails = [u["email"] for u in (await root.get("/api/admin/users")).json()]
    assert {"root@example.com", "alice@example.com", "new@example.com", "given@example.com"} <= set(emails)
    assert all("password" not in u for u in (await root.get("/api/admin/users")).json())


async def test_admins_cannot_lock_themselves_or_the_last_admin_out(make: Factory, admin: User) -> None:
    root = await make.as_user(admin)
    response = await root.patch(f"/api/admin/users/{admin.id}", json={"is_active": False})
    assert response.status_code == 409
    second = await make.user(admin=True)
    demoted = await root.patch(f"/api/admin/users/{second.id}", json={"is_admin": False})
    assert demoted.status_code == 200 and demoted.json()["is_admin"] is False
    missing = await root.patch("/api/admin/users/00000000-0000-0000-0000-000000000000", json={"is_active": False})
    assert missing.status_code == 404
