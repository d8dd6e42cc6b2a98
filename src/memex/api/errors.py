"""The one error handler: every error leaves as `{"detail": ...}` with a precise status."""

from __future__ import annotations

import sqlalchemy.exc
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from memex.db.engine import DATABASE_ERRORS
from memex.errors import MemexError, RateLimited

log = structlog.get_logger("memex.api")

DATABASE_RETRY_AFTER_SECONDS = 5
# SQLSTATE classes of a database that is away: connection exceptions, shutdown or start-up, no such database,
# too many connections. No SQLSTATE at all means no server answered.
_AWAY = ("08", "57P", "3D000", "53300")


def _database_detail(exc: Exception) -> str:
    orig = exc.orig if isinstance(exc, sqlalchemy.exc.DBAPIError) else exc
    sqlstate = getattr(orig, "sqlstate", None)
    if isinstance(exc, sqlalchemy.exc.TimeoutError) or sqlstate is None or sqlstate.startswith(_AWAY):
        return "the database is unavailable: try again in a few seconds"
    return "the database could not complete the request (a conflict or timeout): try again in a few seconds"


def _validation_detail(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path"))
        parts.append(f"{where}: {error.get('msg')}" if where else str(error.get("msg")))
    return "; ".join(parts) or "invalid request"


_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def _body(request: Request, detail: str, status: int) -> dict[str, object]:
    """`{"detail"}` everywhere; under /v1/ also OpenAI's `{"error": {...}}`, which its SDKs read."""
    body: dict[str, object] = {"detail": detail}
    if request.url.path.startswith("/v1/"):
        body["error"] = {"message": detail, "type": _OPENAI_TYPES.get(status, "api_error"), "code": status}
    return body


def http_error_response(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """A routing or protocol error (no such path, wrong method) as `{"detail"}`."""
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    return JSONResponse(
        _body(request, detail, exc.status_code), status_code=exc.status_code, headers=getattr(exc, "headers", None)
    )


def install(app: FastAPI) -> None:
    @app.exception_handler(MemexError)
    async def memex_error(request: Request, exc: MemexError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        if isinstance(exc, RateLimited):
            headers = {"Retry-After": str(exc.retry_after), **exc.headers}
        if exc.status_code >= 500:
            log.error("request failed", error=exc.message, path=request.url.path)
        return JSONResponse(_body(request, exc.message, exc.status_code), status_code=exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(_body(request, _validation_detail(exc), 422), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return http_error_response(request, exc)

    async def database_error(request: Request, exc: Exception) -> JSONResponse:
        # str(exc) names the host and the error, never the password (psycopg does not repeat it).
        log.error("database error", error=str(exc).splitlines()[0], path=request.url.path)
        return JSONResponse(
            _body(request, _database_detail(exc), 503),
            status_code=503,
            headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
        )

    for error_class in DATABASE_ERRORS:
        app.add_exception_handler(error_class, database_error)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error", path=request.url.path)
        return JSONResponse({"detail": "internal error: see the server log"}, status_code=500)
