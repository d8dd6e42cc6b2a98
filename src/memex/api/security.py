"""HTTP hardening around the whole app: security headers, CORS, Host checking, header and body size limits.

Outermost first: (the access log →) SecurityHeaders → CORS → HostCheck → RequestLimits → the routes. So every
answer, refusals included, is logged and carries the security headers, and a listed origin can read its refusals.
"""

from __future__ import annotations

import json

from fastapi import FastAPI
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from memex.api.uploads import ENVELOPE_BYTES, too_large
from memex.settings import Settings

# Largest body of any request but an upload: JSON requests are small (a chat message is at most 1000 characters).
MAX_BODY_BYTES = 1024 * 1024
# Largest sum of request header lines. The request line (a long search URL) is bounded by `memex serve` instead.
MAX_HEADER_BYTES = 32 * 1024
# Orchestrators and Prometheus call these by pod IP, under whatever Host; they build no URL from it.
PROBE_PATHS = frozenset({"/api/health", "/api/health/ready", "/metrics"})
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})

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
    second are called by IP."""

    def __init__(self, app: ASGIApp, *, allowed_hosts: list[str]) -> None:
        self.app = app
        self.allowed = [*allowed_hosts, *LOOPBACK_HOSTS] if allowed_hosts else ["*"]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PROBE_PATHS:
            await self.app(scope, receive, send)
            return
        host = host_name(Headers(scope=scope).get("host", ""))
        if not host_allowed(host, self.allowed):
            shown = host[:100] or "(none)"
            detail = f"this server does not answer for the host {shown!r}: add it to MEMEX_ALLOWED_HOSTS"
            await _refusal(400, detail)(scope, receive, send)
            return
        await self.app(scope, receive, send)


class RequestLimits:
    """431 when the request headers pass MAX_HEADER_BYTES; 413 when the body passes its limit, refused from its
    declared length before any of it is read, or while it streams. Multipart bodies (uploads) may be as large
    as MEMEX_MAX_UPLOAD_MB allows, every other body MAX_BODY_BYTES."""

    def __init__(self, app: ASGIApp, *, upload_limit_mb: int) -> None:
        self.app = app
        self.upload_limit_mb = upload_limit_mb
        # Above the upload reader's own limit, so that it answers first and names the file that is too large.
        self.max_upload_bytes = upload_limit_mb * 1024 * 1024 + 2 * ENVELOPE_BYTES

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
        if headers.get("content-type", "").lower().startswith("multipart/form-data"):
            limit, detail = self.max_upload_bytes, too_large(self.upload_limit_mb)
        else:
            limit, detail = MAX_BODY_BYTES, f"the request body is larger than the limit of {MAX_BODY_BYTES // 1024} KiB"
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await _refusal(413, detail)(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Raised into the route reading the body; the app's error handler turns it into the answer.
                    raise HTTPException(413, detail)
            return message

        await self.app(scope, counted, send)


def install(app: FastAPI, settings: Settings) -> None:
    """Add the middlewares, innermost first (each one added wraps those before it)."""
    app.add_middleware(RequestLimits, upload_limit_mb=settings.max_upload_mb)
    app.add_middleware(HostCheck, allowed_hosts=settings.allowed_hosts)
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
