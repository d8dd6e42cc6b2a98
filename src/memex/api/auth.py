"""Who is calling: a session cookie or a bearer API key resolved into an Actor, once per request.

Every route is authenticated (the app installs `guard` for all of them) except those in PUBLIC_PATHS.
Scopes follow the method: GET/HEAD/OPTIONS need `read`, anything else `write`; a route that only reads
despite its method says so with `openapi_extra=READ_ONLY`. Cookie-authenticated writes must echo the
session's CSRF token in the X-CSRF-Token header; API-key requests carry no ambient credentials and are exempt.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Literal

from fastapi import Request, Response

from memex.accounts import keys, service, sessions
from memex.errors import AuthenticationRequired, MemexError, PermissionDenied
from memex.kbs.access import Actor
from memex.runtime import Runtime
from memex.settings import Settings

SESSION_COOKIE = "memex_session"
CSRF_COOKIE = "memex_csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SCOPE_EXTENSION = "x-memex-scope"
READ_ONLY = {SCOPE_EXTENSION: "read"}

# Route paths (as declared) anyone may call. /openapi.json and the /static mount are not API routes
# and never run dependencies; they are listed so this set reads as the whole public surface. The web UI's
# pages are empty shells (their data comes from the API), so they are public too.
PUBLIC_PATHS = frozenset(
    {
        "/api/health",
        "/api/health/ready",
        "/api/auth/login",
        "/api/auth/oidc/login",
        "/api/auth/oidc/callback",
        "/metrics",  # its own rule: loopback or MEMEX_METRICS_TOKEN (routes/metrics.py)
        "/docs",
        "/openapi.json",
        "/static",
        "/",
        "/chat",
        "/login",
        "/kbs",
        "/kbs/{kb_id}",
        "/keys",
        "/admin",
    }
)


@dataclass(frozen=True, slots=True)
class Authentication:
    """The outcome of reading a request's credentials: an actor, or why there is none."""

    actor: Actor | None
    via: Literal["session", "key", "disabled", "none"]
    csrf_token: str | None = None
    session_token: str | None = None
    problem: str | None = None


async def _resolve(request: Request) -> Authentication:
    runtime: Runtime = request.app.state.runtime
    settings: Settings = request.app.state.settings
    header = request.headers.get("authorization")
    cookie = request.cookies.get(SESSION_COOKIE)
    if not settings.auth:
        async with runtime.engine.begin() as conn:
            actor = await service.auth_disabled_actor(conn)
        problem = None if actor else "authentication is off but there is no admin yet: run `memex users create --admin`"
        return Authentication(actor=actor, via="disabled", problem=problem)
    if header is not None:
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            return Authentication(actor=None, via="key", problem="use 'Authorization: Bearer <api key>'")
        try:
            async with runtime.engine.begin() as conn:
                return Authentication(actor=await keys.key_actor(conn, secret.strip()), via="key")
        except AuthenticationRequired as exc:
            return Authentication(actor=None, via="key", problem=exc.message)
    if cookie:
        try:
            async with runtime.engine.begin() as conn:
                actor, record = await sessions.session_actor(conn, cookie)
        except AuthenticationRequired as exc:
            return Authentication(actor=None, via="session", problem=exc.message)
        return Authentication(actor=actor, via="session", csrf_token=record.csrf_token, session_token=cookie)
    return Authentication(actor=None, via="none")


async def authentication(request: Request) -> Authentication:
    """The request's credentials, resolved on first use and then kept on the request."""
    found: Authentication | None = getattr(request.state, "memex_auth", None)
    if found is None:
        found = await _resolve(request)
        request.state.memex_auth = found
    return found


def required_scope(request: Request) -> str:
    route = request.scope.get("route")
    declared = (getattr(route, "openapi_extra", None) or {}).get(SCOPE_EXTENSION)
    if declared:
        return str(declared)
    return "read" if request.method in SAFE_METHODS else "write"


def _enforce(request: Request, found: Authentication) -> Actor:
    if found.actor is None:
        raise AuthenticationRequired(found.problem)
    if found.via == "session" and request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not (found.csrf_token and hmac.compare_digest(sent.encode(), found.csrf_token.encode())):
            raise PermissionDenied(
                f"CSRF token missing or wrong: send the {CSRF_HEADER} header with the {CSRF_COOKIE} cookie's value"
            )
    found.actor.require_scope(required_scope(request))
    return found.actor


def is_public(request: Request) -> bool:
    route = request.scope.get("route")
    return getattr(route, "path", None) in PUBLIC_PATHS


async def guard(request: Request) -> None:
    """Installed on the whole app: every route not in PUBLIC_PATHS needs a valid actor with the method's scope."""
    if not is_public(request):
        _enforce(request, await authentication(request))


async def current_actor(request: Request) -> Actor:
    return _enforce(request, await authentication(request))


async def api_key_actor(request: Request, scope: str = "read") -> Actor:
    """The actor of a request that must carry an API key (or come while authentication is off), for endpoints
    outside the API's routes (/mcp). A session cookie is not enough: such endpoints have no CSRF check."""
    found = await authentication(request)
    if found.via == "session" or found.via == "none":
        raise AuthenticationRequired("authentication required: send 'Authorization: Bearer <api key>'")
    if found.actor is None:
        raise AuthenticationRequired(found.problem)
    found.actor.require_scope(scope)
    return found.actor


async def optional_actor(request: Request) -> Actor | None:
    """The actor if valid credentials came with the request, else None (for pages that render either way)."""
    try:
        return await current_actor(request)
    except MemexError:
        return None


async def admin_actor(request: Request) -> Actor:
    """An admin user, and, through an API key, one with the admin scope."""
    actor = await current_actor(request)
    if actor.api_key_id is not None and "admin" not in actor.scopes:
        raise PermissionDenied("this API key lacks the 'admin' scope")
    if not actor.is_admin:
        raise PermissionDenied("administrators only")
    return actor


def secure_cookies(request: Request, settings: Settings) -> bool:
    """Whether cookies must be Secure: the request, or the server's public URL, is https."""
    return request.url.scheme == "https" or (settings.public_url or "").startswith("https://")


def set_session_cookies(
    response: Response, request: Request, settings: Settings, *, token: str, csrf_token: str
) -> None:
    """The session cookie (HttpOnly) and the CSRF cookie (readable by the page's script, to echo in a header)."""
    common = {
        "max_age": settings.session_hours * 3600,
        "samesite": "lax",
        "secure": secure_cookies(request, settings),
        "path": "/",
    }
    response.set_cookie(SESSION_COOKIE, token, httponly=True, **common)  # type: ignore[arg-type]
    response.set_cookie(CSRF_COOKIE, csrf_token, httponly=False, **common)  # type: ignore[arg-type]


def clear_session_cookies(response: Response, request: Request, settings: Settings) -> None:
    secure = secure_cookies(request, settings)
    response.delete_cookie(SESSION_COOKIE, path="/", samesite="lax", secure=secure, httponly=True)
    response.delete_cookie(CSRF_COOKIE, path="/", samesite="lax", secure=secure)
