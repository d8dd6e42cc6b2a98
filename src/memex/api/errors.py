"""The one error handler: every error leaves as `{"detail": ...}` with a precise status."""

from __future__ import annotations

import sqlalchemy.exc
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from procrastinate.exceptions import ConnectorException
from starlette.exceptions import HTTPException as StarletteHTTPException

from memex.db import failures
from memex.errors import DatabaseUnavailable, MemexError, RateLimited, UploadRejected

log = structlog.get_logger("memex.api")


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
        if isinstance(exc, DatabaseUnavailable):
            headers = {"Retry-After": str(failures.RETRY_AFTER_SECONDS)}
        if exc.status_code >= 500:
            log.error("request failed", error=exc.message, path=request.url.path)
        body = _body(request, exc.message, exc.status_code)
        if isinstance(exc, UploadRejected):
            body["rejected"] = [{"name": name, "reason": reason} for name, reason in exc.rejected]
        return JSONResponse(body, status_code=exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(_body(request, _validation_detail(exc), 422), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return http_error_response(request, exc)

    def database_unavailable(request: Request, exc: BaseException) -> JSONResponse:
        # The driver's first line names the host and the error, never the password (psycopg does not repeat it).
        log.error("database error", error=failures.first_line(exc), path=request.url.path)
        return JSONResponse(
            _body(request, failures.detail(failures.database_error(exc) or exc), 503),
            status_code=503,
            headers={"Retry-After": str(failures.RETRY_AFTER_SECONDS)},
        )

    async def database_error(request: Request, exc: Exception) -> JSONResponse:
        if failures.database_error(exc) is None:
            return await unexpected(request, exc)  # a bug the driver reported (a constraint, bad SQL)
        return database_unavailable(request, exc)

    # Any driver error lands here first; only those that mean "the database could not serve" become 503s.
    for error_class in (*failures.DATABASE_ERRORS, sqlalchemy.exc.DBAPIError, ConnectorException):
        app.add_exception_handler(error_class, database_error)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Also what escapes the middleware and what a task group wrapped: a database failure is still a 503.
        if failures.database_error(exc) is not None:
            return database_unavailable(request, exc)
        log.exception("unexpected error", path=request.url.path)
        return JSONResponse({"detail": "internal error: see the server log"}, status_code=500)
