"""Single sign-on against a real OpenID provider (oidc-provider on Node, on loopback): sign-in, provisioning,
admin group, and every refusal — wrong issuer, replayed state, bad nonce, disallowed domain, forged callbacks.

The browser is an httpx client that reaches Memex in-process (ASGI, at http://memex.test) and the provider
over the network; Memex itself talks to the provider over the network too.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pytest
import sqlalchemy as sa
import structlog
from fastapi import FastAPI
from pydantic import ValidationError

from memex.api.app import create_app
from memex.api.auth import SESSION_COOKIE
from memex.api.routes.oidc import STATE_COOKIE
from memex.logging import configure_logging
from memex.runtime import Runtime
from memex.settings import Settings
from tests.conftest import make_settings, require
from tests.doubles.oidc_provider import CLIENT_ID, CLIENT_SECRET, Account, OidcProvider, authorize, missing
from tests.factories import PASSWORD, Factory

BASE = "http://memex.test"
CALLBACK = f"{BASE}/api/auth/oidc/callback"
START = f"{BASE}/api/auth/oidc/login"


@pytest.fixture(scope="module")
def provider() -> Iterator[OidcProvider]:
    why = missing()
    if why:
        require("the OpenID provider of the tests", why)
    started = OidcProvider([CALLBACK])
    yield started
    started.stop()


@dataclass
class Sso:
    """Memex configured for single sign-on with the test provider, and browsers to sign in with."""

    runtime: Runtime
    app: FastAPI
    browsers: list[httpx.AsyncClient] = field(default_factory=list)

    def browser(self) -> httpx.AsyncClient:
        client = httpx.AsyncClient(mounts={BASE: httpx.ASGITransport(app=self.app)}, timeout=30)
        self.browsers.append(client)
        return client

    async def begin(self, browser: httpx.AsyncClient, next: str = "/") -> str:
        """Start at Memex; returns the provider's authorization URL that Memex redirects to."""
        response = await browser.get(START, params={"next": next})
        assert response.status_code == 302, response.text
        return response.headers["location"]

    async def callback_url(self, browser: httpx.AsyncClient, account: Account, next: str = "/") -> str:
        return await authorize(browser, await self.begin(browser, next), account, stop_at=BASE)

    async def sign_in(
        self, account: Account, *, browser: httpx.AsyncClient | None = None, next: str = "/"
    ) -> tuple[httpx.AsyncClient, httpx.Response]:
        """A whole sign-in: returns the browser and Memex's answer to the callback (not followed)."""
        browser = browser or self.browser()
        return browser, await browser.get(await self.callback_url(browser, account, next))

    async def user_row(self, email: str) -> sa.Row[tuple[uuid.UUID, bool, str | None]] | None:
        async with self.runtime.engine.connect() as conn:
            query = "SELECT id, is_admin, password_hash FROM users WHERE lower(email) = lower(:email)"
            return (await conn.execute(sa.text(query), {"email": email})).first()


SsoFactory = Callable[..., Awaitable[Sso]]


@pytest.fixture
async def sso_for(
    runtime: Runtime, provider: OidcProvider, database_url: str, tmp_path: Path, model_cache_dir: Path
) -> AsyncIterator[SsoFactory]:
    made: list[Sso] = []

    async def build(**overrides: object) -> Sso:
        options: dict[str, object] = {
            "oidc_issuer": provider.issuer,
            "oidc_client_id": CLIENT_ID,
            "oidc_client_secret": CLIENT_SECRET,
            "oidc_scopes": "openid email profile groups",
            "oidc_display_name": "Test IdP",
        }
        settings = make_settings(database_url, tmp_path / "data", model_cache_dir, **(options | overrides))
        # The test's runtime (its engine and embedder), with these settings and caches of its own.
        configured = dataclasses.replace(runtime, settings=settings, caches={})
        sso = Sso(runtime=configured, app=create_app(settings, runtime=configured))
        made.append(sso)
        return sso

    yield build
    for sso in made:
        for browser in sso.browsers:
            await browser.aclose()


@pytest.fixture
async def sso(sso_for: SsoFactory) -> Sso:
    return await sso_for()


def account(email: str | None = None, **fields: object) -> Account:
    sub = uuid.uuid4().hex
    return Account(sub=sub, email=f"{sub[:8]}@example.com" if email is None else email, **fields)  # type: ignore[arg-type]


def with_query(url: str, **changes: str | None) -> str:
    """`url` with query parameters replaced (None removes one)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    for name, value in changes.items():
        if value is None:
            query.pop(name, None)
        else:
            query[name] = value
    return parts._replace(query=urlencode(query)).geturl()


def detail(response: httpx.Response) -> str:
    return str(response.json()["detail"])


# --- signing in ------------------------------------------------------------------------------------------


async def test_first_sign_in_creates_a_normal_user_with_a_personal_kb_and_a_session(sso: Sso) -> None:
    who = account()
    browser, response = await sso.sign_in(who, next="/kbs?tab=shared")
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/kbs?tab=shared"
    cookies = {h.split("=", 1)[0]: h for h in response.headers.get_list("set-cookie")}
    assert "httponly" in cookies[SESSION_COOKIE].lower() and "samesite=lax" in cookies[SESSION_COOKIE].lower()
    assert STATE_COOKIE not in browser.cookies  # spent

    me = await browser.get(f"{BASE}/api/auth/me")
    assert me.status_code == 200, me.text
    assert me.json()["user"]["email"] == who.email and me.json()["auth"] == "session"
    assert me.json()["user"]["is_admin"] is False
    kbs = (await browser.get(f"{BASE}/api/kbs")).json()
    assert [kb["is_personal"] for kb in kbs] == [True]

    assert who.email is not None
    row = await sso.user_row(who.email)
    assert row is not None and row.password_hash is None
    async with sso.runtime.engine.connect() as conn:
        linked = (await conn.execute(sa.text("SELECT issuer, subject, user_id FROM user_identities"))).one()
        audited = (await conn.execute(sa.text("SELECT action, detail FROM audit_log ORDER BY id DESC LIMIT 1"))).one()
    assert (linked.issuer, linked.subject, linked.user_id) == (sso.runtime.settings.oidc_issuer, who.sub, row.id)
    assert audited.action == "login" and audited.detail == {"via": "sso"}


async def test_the_next_sign_in_finds_the_same_user(sso: Sso) -> None:
    who = account()
    _, first = await sso.sign_in(who)
    _, again = await sso.sign_in(dataclasses.replace(who, email=f"renamed-{who.email}"))
    assert first.status_code == again.status_code == 303
    async with sso.runtime.engine.connect() as conn:
        users = (await conn.execute(sa.text("SELECT email FROM users"))).scalars().all()
    assert users == [who.email]  # matched by issuer and subject, not by the email, which may change


async def test_an_existing_user_is_linked_by_their_verified_email(sso: Sso, make: Factory) -> None:
    existing = await make.user(email="carol@example.com")
    browser, response = await sso.sign_in(account("Carol@Example.com"))
    assert response.status_code == 303, response.text
    me = (await browser.get(f"{BASE}/api/auth/me")).json()
    assert me["user"]["id"] == str(existing.id)
    # Their password still works: single sign-on was added, nothing taken away.
    password = await sso.browser().post(f"{BASE}/api/auth/login", json={"email": existing.email, "password": PASSWORD})
    assert password.status_code == 200


async def test_the_admin_group_decides_who_is_admin_at_every_sign_in(sso_for: SsoFactory) -> None:
    sso = await sso_for(oidc_admin_group="memex-admins")
    who = account(groups=("staff", "memex-admins"))
    browser, response = await sso.sign_in(who)
    assert response.status_code == 303
    me = (await browser.get(f"{BASE}/api/auth/me")).json()
    assert me["user"]["is_admin"] is True and "admin" in me["scopes"]
    assert (await browser.get(f"{BASE}/api/admin/users")).status_code == 200

    browser, response = await sso.sign_in(dataclasses.replace(who, groups=("staff",)))
    assert response.status_code == 303
    assert (await browser.get(f"{BASE}/api/auth/me")).json()["user"]["is_admin"] is False
    assert (await browser.get(f"{BASE}/api/admin/users")).status_code == 403
    async with sso.runtime.engine.connect() as conn:
        actions = (await conn.execute(sa.text("SELECT action FROM audit_log ORDER BY id"))).scalars().all()
    assert "user_demoted" in actions


async def test_without_an_admin_group_sign_on_never_changes_the_admin_flag(sso: Sso, make: Factory) -> None:
    await make.user(email="root@example.com", admin=True)
    browser, response = await sso.sign_in(account("root@example.com"))
    assert response.status_code == 303
    assert (await browser.get(f"{BASE}/api/auth/me")).json()["user"]["is_admin"] is True


async def test_next_never_leaves_the_site(sso: Sso) -> None:
    for outside in ("https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)"):
        _, response = await sso.sign_in(account(), next=outside)
        assert response.status_code == 303 and response.headers["location"] == "/", outside


# --- refused: who signs in -------------------------------------------------------------------------------


async def test_a_disallowed_domain_is_refused(sso_for: SsoFactory) -> None:
    sso = await sso_for(oidc_allowed_domains="example.com, Example.org")
    _, allowed = await sso.sign_in(account("dora@example.org"))
    assert allowed.status_code == 303
    _, response = await sso.sign_in(account("eve@evil.example"))
    assert response.status_code == 403
    assert detail(response) == "accounts of the domain evil.example may not sign in here: ask an administrator"
    assert await sso.user_row("eve@evil.example") is None
    async with sso.runtime.engine.connect() as conn:
        refused = (
            await conn.execute(sa.text("SELECT action, outcome, detail FROM audit_log ORDER BY id DESC LIMIT 1"))
        ).one()
    assert refused.action == "login_failed" and refused.outcome == "failure"
    assert refused.detail == {"reason": "sso_domain", "via": "sso", "email": "eve@evil.example"}


async def test_an_unverified_email_is_refused(sso: Sso) -> None:
    _, response = await sso.sign_in(account("frank@example.com", email_verified=False))
    assert response.status_code == 403
    assert (
        detail(response) == "the sign-in provider has not verified the email frank@example.com: verify it there first"
    )
    assert await sso.user_row("frank@example.com") is None


async def test_no_email_is_refused(sso: Sso) -> None:
    _, response = await sso.sign_in(account(""))
    assert response.status_code == 403
    assert "shared no email address" in detail(response)


async def test_a_disabled_user_is_refused(sso: Sso, make: Factory, runtime: Runtime) -> None:
    user = await make.user(email="gina@example.com")
    async with runtime.engine.begin() as conn:
        await conn.execute(sa.text("UPDATE users SET is_active = false WHERE id = :id"), {"id": user.id})
    browser, response = await sso.sign_in(account("gina@example.com"))
    assert response.status_code == 403
    assert detail(response) == "this account is disabled: ask an administrator"
    assert SESSION_COOKIE not in browser.cookies


# --- refused: who answers --------------------------------------------------------------------------------


async def test_an_issuer_whose_discovery_names_another_is_refused(sso_for: SsoFactory, provider: OidcProvider) -> None:
    elsewhere = provider.issuer.replace("127.0.0.1", "localhost")
    sso = await sso_for(oidc_issuer=elsewhere)
    response = await sso.browser().get(START)
    assert response.status_code == 503
    assert detail(response) == (
        f"single sign-on is misconfigured: the discovery document at {elsewhere}/.well-known/openid-configuration "
        f"names the issuer {provider.issuer!r}, not {elsewhere!r}; set MEMEX_OIDC_ISSUER to exactly the "
        "provider's issuer"
    )


async def test_a_response_from_another_issuer_is_refused(sso_for: SsoFactory, provider: OidcProvider) -> None:
    """A mix-up: the configured issuer's discovery sends the browser to another provider, which names itself
    in its answer (RFC 9207)."""
    configured = f"{provider.issuer}/mixup"
    sso = await sso_for(oidc_issuer=configured)
    _, response = await sso.sign_in(account())
    assert response.status_code == 401
    assert detail(response) == (
        f"the sign-in response names the issuer {provider.issuer!r}, not {configured!r}: it did not come from "
        "the configured provider, and was refused"
    )


async def test_an_id_token_from_another_issuer_is_refused(sso_for: SsoFactory, provider: OidcProvider) -> None:
    """The same mix-up when the answer does not name its issuer: the ID token's `iss` gives it away."""
    configured = f"{provider.issuer}/mixup"
    sso = await sso_for(oidc_issuer=configured)
    browser = sso.browser()
    callback = await sso.callback_url(browser, account())
    response = await browser.get(with_query(callback, iss=None))
    assert response.status_code == 401
    assert detail(response) == (
        f"the ID token was issued by {provider.issuer!r}, not by the configured issuer {configured!r}: it was refused"
    )


async def test_a_token_for_another_nonce_is_refused(sso: Sso) -> None:
    """The provider issues its token for the nonce of the request it got; one changed on the way (a token
    meant for another sign-in, injected into this one) does not match what this sign-in expects."""
    browser = sso.browser()
    url = await sso.begin(browser)
    callback = await authorize(browser, with_query(url, nonce="a-nonce-of-another-sign-in"), account(), stop_at=BASE)
    response = await browser.get(callback)
    assert response.status_code == 401
    assert detail(response) == (
        "the ID token's nonce does not match this sign-in (a replayed or injected token): it was refused"
    )
    assert SESSION_COOKIE not in browser.cookies


# --- refused: forged and replayed callbacks --------------------------------------------------------------


async def test_a_replayed_callback_is_refused(sso: Sso) -> None:
    browser = sso.browser()
    callback = await sso.callback_url(browser, account())
    state = browser.cookies[STATE_COOKIE]
    assert (await browser.get(callback)).status_code == 303
    replayed = await sso.browser().get(callback, headers={"Cookie": f"{STATE_COOKIE}={state}"})
    assert replayed.status_code == 400
    assert detail(replayed) == (
        "this sign-in response was already used, or has expired: start again from the login page"
    )


async def test_an_expired_sign_in_is_refused(sso: Sso) -> None:
    browser = sso.browser()
    callback = await sso.callback_url(browser, account())
    async with sso.runtime.engine.begin() as conn:
        await conn.execute(sa.text("UPDATE oidc_logins SET expires_at = now() - interval '1 second'"))
    response = await browser.get(callback)
    assert response.status_code == 400 and "already used, or has expired" in detail(response)


async def test_a_callback_without_state_is_refused(sso: Sso) -> None:
    response = await sso.browser().get(CALLBACK, params={"code": "forged"})
    assert response.status_code == 400
    assert detail(response) == (
        "the sign-in response has no state, so it cannot be trusted: start again from the login page"
    )


async def test_a_callback_for_a_sign_in_another_browser_started_is_refused(sso: Sso) -> None:
    """Login CSRF: someone sends you the callback of a sign-in they started, to sign you in as them."""
    attacker = sso.browser()
    callback = await sso.callback_url(attacker, account())
    victim = sso.browser()
    response = await victim.get(callback)
    assert response.status_code == 400
    assert detail(response) == "this sign-in response was not started in this browser: start again from the login page"
    assert SESSION_COOKIE not in victim.cookies
    wrong_cookie = await victim.get(callback, headers={"Cookie": f"{STATE_COOKIE}=not-the-state"})
    assert wrong_cookie.status_code == 400


async def test_a_made_up_state_is_refused(sso: Sso) -> None:
    response = await sso.browser().get(
        CALLBACK, params={"state": "made-up", "code": "forged"}, headers={"Cookie": f"{STATE_COOKIE}=made-up"}
    )
    assert response.status_code == 400 and "already used, or has expired" in detail(response)


async def test_a_forged_code_is_refused_by_the_provider(sso: Sso) -> None:
    browser = sso.browser()
    callback = await sso.callback_url(browser, account())
    response = await browser.get(with_query(callback, code="forged-code"))
    assert response.status_code == 401
    assert detail(response) == "the sign-in provider refused the authorization code (invalid_grant): sign in again"


async def test_a_code_from_another_sign_in_is_useless_without_its_verifier(sso: Sso) -> None:
    """PKCE: a code stolen from someone's sign-in cannot be redeemed in a sign-in of the thief's own."""
    stolen = dict(parse_qsl(urlsplit(await sso.callback_url(sso.browser(), account())).query))["code"]
    thief = sso.browser()
    own = await sso.callback_url(thief, account())
    response = await thief.get(with_query(own, code=stolen))
    assert response.status_code == 401 and "(invalid_grant)" in detail(response)


async def test_a_refusal_from_the_provider_is_shown(sso: Sso) -> None:
    browser = sso.browser()
    await sso.begin(browser)
    state = browser.cookies[STATE_COOKIE]
    response = await browser.get(
        CALLBACK, params={"state": state, "error": "access_denied", "error_description": "the user said no"}
    )
    assert response.status_code == 401
    assert detail(response) == "the sign-in provider refused (access_denied: the user said no)"


async def test_a_browser_gets_the_login_page_with_the_reason(sso: Sso) -> None:
    response = await sso.browser().get(CALLBACK, headers={"Accept": "text/html,application/xhtml+xml"})
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/html")
    assert "the sign-in response has no state, so it cannot be trusted" in response.text
    assert "Sign in with Test IdP" in response.text


async def test_a_sign_in_logs_no_code_state_or_secret(
    sso: Sso, runtime: Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(runtime.settings.model_copy(update={"log_format": "json", "log_level": "DEBUG"}))
    # The test's browser is httpx, which logs the URLs it fetches (the callback's included): not Memex's log.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        browser = sso.browser()
        callback = await sso.callback_url(browser, account())
        state = browser.cookies[STATE_COOKIE]
        response = await browser.get(callback)
        assert response.status_code == 303
        session = browser.cookies[SESSION_COOKIE]
        await browser.get(callback)  # replayed: refused and logged
        err = capsys.readouterr().err
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()
        for name in ("httpx", "httpcore"):
            logging.getLogger(name).setLevel(logging.NOTSET)
    code = dict(parse_qsl(urlsplit(callback).query))["code"]
    events = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert any(e.get("event") == "sso_login" for e in events)
    assert any(e.get("event") == "sso_refused" and e.get("reason") == "foreign_state" for e in events)
    for secret in (code, state, session, CLIENT_SECRET):
        assert secret not in err


# --- configuration and the login page --------------------------------------------------------------------


async def test_without_single_sign_on_its_routes_say_so(make: Factory) -> None:
    response = await make.client().get("/api/auth/oidc/login")
    assert response.status_code == 404
    assert detail(response) == "single sign-on is not configured on this server (MEMEX_OIDC_ISSUER)"
    page = await make.client().get("/login")
    assert "Sign in with" not in page.text and 'id="password"' in page.text


async def test_the_login_page_offers_both_ways(sso: Sso) -> None:
    page = await sso.browser().get(f"{BASE}/login", params={"next": "/chat"})
    assert 'href="/api/auth/oidc/login?next=%2Fchat"' in page.text and "Sign in with Test IdP" in page.text
    assert 'id="password"' in page.text


async def test_password_login_can_be_turned_off(sso_for: SsoFactory, make: Factory) -> None:
    sso = await sso_for(password_login=False)
    user = await make.user(email="hank@example.com")
    response = await sso.browser().post(f"{BASE}/api/auth/login", json={"email": user.email, "password": PASSWORD})
    assert response.status_code == 403
    assert detail(response) == "password login is turned off here: sign in with Test IdP"
    page = await sso.browser().get(f"{BASE}/login")
    assert "Sign in with Test IdP" in page.text and 'id="password"' not in page.text
    _, signed = await sso.sign_in(account("hank@example.com"))
    assert signed.status_code == 303


def test_settings_refuse_what_cannot_work() -> None:
    with pytest.raises(ValidationError, match="MEMEX_PASSWORD_LOGIN=false needs single sign-on"):
        Settings(password_login=False)
    with pytest.raises(ValidationError, match="MEMEX_OIDC_CLIENT_ID is not"):
        Settings(oidc_issuer="https://id.example.com")
    with pytest.raises(ValidationError, match="must be an https:// URL"):
        Settings(oidc_issuer="http://id.example.com", oidc_client_id="memex")
    settings = Settings(
        oidc_issuer="https://id.example.com", oidc_client_id="memex", oidc_allowed_domains="@A.com,b.org"
    )
    assert settings.oidc and settings.oidc_allowed_domains == ["a.com", "b.org"]
