"""HTTP hardening around the whole app: proxy headers, security headers, CORS, Host checking, cross-site
refusals while authentication is off, header and body size limits.

Outermost first: ProxyHeaders → (the access log →) SecurityHeaders → CORS → HostCheck → CrossSiteCheck →
RequestLimits → the routes. So every layer sees the client's own address and scheme, every answer, refusals
included, is logged and carries the security headers, and a listed origin can read its refusals.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from fastapi import FastAPI
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from memex.api.uploads import ENVELOPE_BYTES, too_large
from memex.settings import Settings

# Largest sum of request header lines. The request line (a long search URL) is bounded by `memex serve` instead.
MAX_HEADER_BYTES = 32 * 1024
# Orchestrators and Prometheus call these by pod IP, under whatever Host; they build no URL from it.
PROBE_PATHS = frozenset({"/api/health", "/api/health/ready", "/metrics"})
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
# Methods that change something: while authentication is off, only the server's own pages may send them.
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

# For anything that does not set its own (web pages do): JSON must never be run or framed as a document.
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=(), usb=(), accelerometer=(), gyroscope=()"
HSTS = "max-age=31536000"

CORS_ALLOW_HEADERS = ["Authorization", "Content-Type", "X-CSRF-Token", "X-Request-ID", "Last-Event-ID"]
CORS_EXPOSE_HEADERS = [
    "X-Request-ID",
    "Retry-After",
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "Content-Disposition",
]


def _refusal(status: int, detail: str) -> Response:
    return JSONResponse({"detail": detail}, status_code=status)


class SecurityHeaders:
    """Adds nosniff, frame and referrer rules, a permissions policy, a CSP unless the response has one, and HSTS
    when the public URL is https."""

    def __init__(self, app: ASGIApp, *, hsts: bool) -> None:
        self.app = app
        self.defaults = {
            "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": "DENY",
            "Referrer-Policy": "same-origin",
            "Permissions-Policy": PERMISSIONS_POLICY,
            "Content-Security-Policy": API_CSP,
            "Cache-Control": "no-store",
            **({"Strict-Transport-Security": HSTS} if hsts else {}),
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.defaults.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


class Cors(CORSMiddleware):
    """Starlette's CORS, refusing a preflight with the usual `{"detail"}` body rather than plain text."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code == 400:
            refused = bytes(response.body).decode().removeprefix("Disallowed CORS ")
            detail = f"CORS preflight refused ({refused}): the origin must be listed in MEMEX_CORS_ORIGINS"
            body = json.dumps({"detail": detail}).encode()
            response.body = body
            response.headers["content-type"] = "application/json"
            response.headers["content-length"] = str(len(body))
        return response


def host_name(host_header: str) -> str:
    """The name in a Host header, without its port; IPv6 literals lose their brackets."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def host_allowed(host: str, allowed: list[str]) -> bool:
    for pattern in allowed:
        if pattern == "*" or host == pattern or (pattern.startswith("*.") and host.endswith(pattern[1:])):
            return True
    return False


class HostCheck:
    """Answers only for the Host names in MEMEX_ALLOWED_HOSTS (an empty list accepts any). Loopback names and the
    probe paths are always answered: the first cannot be reached from another machine's browser, and the
    second are called by IP.

    With authentication off (`loopback_only`) every request acts as the admin, so only loopback names and the
    listed ones are answered, probes included: a page whose own name was rebound to 127.0.0.1 (DNS rebinding)
    is refused."""

    def __init__(self, app: ASGIApp, *, allowed_hosts: list[str], loopback_only: bool = False) -> None:
        self.app = app
        self.loopback_only = loopback_only
        self.allowed = [*allowed_hosts, *LOOPBACK_HOSTS] if allowed_hosts or loopback_only else ["*"]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (scope["path"] in PROBE_PATHS and not self.loopback_only):
            await self.app(scope, receive, send)
            return
        host = host_name(Headers(scope=scope).get("host", ""))
        if not host_allowed(host, self.allowed):
            shown = host[:100] or "(none)"
            detail = f"this server does not answer for the host {shown!r}: add it to MEMEX_ALLOWED_HOSTS"
            if self.loopback_only:
                detail = (
                    f"authentication is off, so this server answers only for localhost, 127.0.0.1, [::1] and "
                    f"MEMEX_ALLOWED_HOSTS, not for the host {shown!r}"
                )
            await _refusal(400, detail)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _origin_of(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of a URL or an Origin header; None for "null" and anything unparsable."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)


class CrossSiteCheck:
    """While authentication is off: 403 for a state-changing request sent by another site's page (a form post, a
    fetch from a page the user visits). Such a request is recognised by `Sec-Fetch-Site: cross-site`, or by an
    Origin (or, without one, a Referer) other than this server's own or one in MEMEX_CORS_ORIGINS. Requests
    with neither header (the CLI, scripts, curl) carry no ambient credentials to abuse and pass."""

    def __init__(self, app: ASGIApp, *, trusted_origins: list[str]) -> None:
        self.app = app
        self.trusted = {found for origin in trusted_origins if (found := _origin_of(origin))}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in UNSAFE_METHODS:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        sender = headers.get("origin") or headers.get("referer")
        own = _origin_of(f"{scope.get('scheme', 'http')}://{headers.get('host', '')}")
        cross_site = headers.get("sec-fetch-site", "").lower() == "cross-site"
        if cross_site or (sender is not None and _origin_of(sender) not in {own, *self.trusted}):
            detail = (
                "cross-site request refused: authentication is off, so only this server's own pages (and "
                "MEMEX_CORS_ORIGINS) may change anything"
            )
            await _refusal(403, detail)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _is_upload_route(scope: Scope) -> bool:
    """Whether the route the request matched takes multipart uploads: it declares a multipart/form-data body
    (api/uploads.py streams it, so FastAPI cannot). Known once routing has run, when the body is first read."""
    extra = getattr(scope.get("route"), "openapi_extra", None) or {}
    return "multipart/form-data" in ((extra.get("requestBody") or {}).get("content") or {})


class RequestLimits:
    """431 when the request headers pass MAX_HEADER_BYTES; 413 when the body passes its limit: from its declared
    length before any of it is read, else as it streams (chunked bodies are counted too). A multipart body sent to
    an upload route may be as large as MEMEX_MAX_UPLOAD_MB allows; every other body, on any route and before
    authentication (FastAPI reads a body before running dependencies), MEMEX_MAX_JSON_KB."""

    def __init__(self, app: ASGIApp, *, upload_limit_mb: int, json_limit_kb: int) -> None:
        self.app = app
        self.upload_limit_mb = upload_limit_mb
        # Above the upload reader's own limit, so that it answers first and names the file that is too large.
        self.max_upload_bytes = upload_limit_mb * 1024 * 1024 + 2 * ENVELOPE_BYTES
        self.json_limit = json_limit_kb * 1024
        self.json_detail = f"the request body is larger than the limit of {json_limit_kb} KiB (MEMEX_MAX_JSON_KB)"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header_bytes = sum(len(name) + len(value) + 4 for name, value in scope["headers"])
        if header_bytes > MAX_HEADER_BYTES:
            detail = f"the request headers are larger than the limit of {MAX_HEADER_BYTES // 1024} KiB"
            await _refusal(431, detail)(scope, receive, send)
            return
        headers = Headers(scope=scope)
        multipart = scope["method"] == "POST" and headers.get("content-type", "").lower().startswith(
            "multipart/form-data"
        )
        length = headers.get("content-length", "")
        declared = int(length) if length.isdigit() else None
        # Before routing, only a multipart body may be as large as an upload; the route decides at the first read.
        if declared is not None and declared > (self.max_upload_bytes if multipart else self.json_limit):
            detail = too_large(self.upload_limit_mb) if multipart else self.json_detail
            await _refusal(413, detail)(scope, receive, send)
            return
        received = 0
        chosen: tuple[int, str] | None = None

        async def counted() -> Message:
            nonlocal received, chosen
            if chosen is None:
                chosen = (self.json_limit, self.json_detail)
                if multipart and _is_upload_route(scope):
                    chosen = (self.max_upload_bytes, too_large(self.upload_limit_mb))
                if declared is not None and declared > chosen[0]:
                    raise HTTPException(413, chosen[1])  # refused before any of it is read
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > chosen[0]:
                    # Raised into the route reading the body; the app's error handler turns it into the answer.
                    raise HTTPException(413, chosen[1])
            return message

        await self.app(scope, counted, send)


def install(app: FastAPI, settings: Settings) -> None:
    """Add the middlewares, innermost first (each one added wraps those before it)."""
    app.add_middleware(RequestLimits, upload_limit_mb=settings.max_upload_mb, json_limit_kb=settings.max_json_kb)
    if not settings.auth:
        trusted = [*settings.cors_origins, *([settings.public_url] if settings.public_url else [])]
        app.add_middleware(CrossSiteCheck, trusted_origins=trusted)
    app.add_middleware(HostCheck, allowed_hosts=settings.allowed_hosts, loopback_only=not settings.auth)
    app.add_middleware(
        Cors,
        allow_origins=settings.cors_origins,
        allow_credentials=True,
        allow_methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
        allow_headers=CORS_ALLOW_HEADERS,
        expose_headers=CORS_EXPOSE_HEADERS,
        max_age=600,
    )
    app.add_middleware(SecurityHeaders, hsts=(settings.public_url or "").lower().startswith("https://"))


def trust_proxies(app: FastAPI, settings: Settings) -> None:
    """Outermost: from the addresses in MEMEX_TRUSTED_PROXIES only, take the client's address from
    X-Forwarded-For and the scheme from X-Forwarded-Proto (so cookies are Secure behind a TLS proxy, and rate
    limits and the audit log see the client). From any other address both headers are ignored."""
    if settings.trusted_proxies:
        trusted = "*" if "*" in settings.trusted_proxies else settings.trusted_proxies
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=trusted)
