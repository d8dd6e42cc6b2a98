"""The web UI: public HTML shells and static assets; every piece of data comes from the API in the browser."""

from __future__ import annotations

import os
from functools import cache
from importlib.metadata import version
from importlib.resources import files
from pathlib import Path
from urllib.parse import urlencode

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import Scope

import memex
from memex.accounts import sso
from memex.api import errors
from memex.documents.service import accepted_extensions
from memex.settings import Settings

WEB = Path(memex.__file__).parent / "web"

# Pages load only their own scripts and styles; nothing inline and nothing from elsewhere.
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

# The OpenAPI UI's Swagger UI assets come from a package (fastapi-offline ships them), so /docs works with no
# internet and loads nothing from elsewhere; Swagger UI sets some styles inline.
SWAGGER_UI = "/static/swagger"
SWAGGER_ASSETS = Path(str(files("fastapi_offline") / "static"))
_DOCS_HEADERS = {
    **_HEADERS,
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
}

router = APIRouter(tags=["web"], include_in_schema=False)
templates = Jinja2Templates(directory=WEB / "templates")


@cache
def _asset_version() -> str:
    """Appended to asset URLs so that browsers fetch new scripts after an upgrade."""
    return version("memex")


def _page(request: Request, template: str, *, title: str, nav: str = "", **context: object) -> HTMLResponse:
    response = templates.TemplateResponse(
        request, template, {"title": title, "nav": nav, "v": _asset_version(), **context}
    )
    response.headers.update(_HEADERS)
    return response


# How the upload boxes name the accepted types, in this order; extensions without a name here are shown as they are.
_TYPE_NAMES = {
    ".md": "Markdown",
    ".markdown": "Markdown",
    ".txt": "text",
    ".text": "text",
    ".pdf": "PDF",
    ".docx": "Word",
    ".html": "HTML",
    ".htm": "HTML",
    ".json": "JSON",
    ".rst": "reStructuredText",
    ".org": "Org",
}


def _upload_context(settings: Settings) -> dict[str, object]:
    """What an upload box needs: the picker's `accept` list, the types in words, and the size limit."""
    accepted = accepted_extensions(settings.allowed_file_types)
    ordered = [e for e in _TYPE_NAMES if e in accepted] + sorted(accepted - _TYPE_NAMES.keys())
    names = list(dict.fromkeys(_TYPE_NAMES.get(e, e) for e in ordered))
    return {"accept": ",".join(ordered), "accepted_names": ", ".join(names), "max_upload_mb": settings.max_upload_mb}


@router.get("/", response_class=HTMLResponse)
async def search_page(request: Request) -> HTMLResponse:
    return _page(request, "search.html", title="Search", nav="search", **_upload_context(request.app.state.settings))


@router.get("/chat", response_class=HTMLResponse)
async def chat_page(request: Request) -> HTMLResponse:
    return _page(request, "chat.html", title="Chat", nav="chat")


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request) -> HTMLResponse:
    return login_response(request)


def login_response(request: Request, *, error: str | None = None, status_code: int = 200) -> HTMLResponse:
    """The login page: the password form and/or the single sign-on button, as configured, with an error if any."""
    settings: Settings = request.app.state.settings
    sso_url = None
    if settings.oidc:
        sso_url = "/api/auth/oidc/login?" + urlencode({"next": sso.safe_next(request.query_params.get("next"))})
    response = _page(
        request,
        "login.html",
        title="Log in",
        error=error,
        password_login=settings.password_login,
        sso_url=sso_url,
        sso_name=settings.oidc_display_name,
    )
    response.status_code = status_code
    return response


@router.get("/kbs", response_class=HTMLResponse)
async def kbs_page(request: Request) -> HTMLResponse:
    return _page(request, "kbs.html", title="Knowledge bases", nav="kbs")


@router.get("/kbs/{kb_id}", response_class=HTMLResponse)
async def kb_page(request: Request, kb_id: str) -> HTMLResponse:
    upload = _upload_context(request.app.state.settings)
    return _page(request, "kb.html", title="Knowledge base", nav="kbs", kb_id=kb_id, **upload)


@router.get("/documents/{document_id}", response_class=HTMLResponse)
async def document_page(request: Request, document_id: str) -> HTMLResponse:
    return _page(request, "document.html", title="Document", nav="search", document_id=document_id)


@router.get("/keys", response_class=HTMLResponse)
async def keys_page(request: Request) -> HTMLResponse:
    return _page(request, "keys.html", title="API keys", nav="keys")


@router.get("/account", response_class=HTMLResponse)
async def account_page(request: Request) -> HTMLResponse:
    return _page(request, "account.html", title="Your account", nav="account")


@router.get("/admin", response_class=HTMLResponse)
async def admin_page(request: Request) -> HTMLResponse:
    return _page(request, "admin.html", title="Users", nav="admin")


@router.get("/docs", response_class=HTMLResponse)
async def api_docs(request: Request) -> HTMLResponse:
    response = templates.TemplateResponse(request, "docs.html", {"v": _asset_version(), "swagger": SWAGGER_UI})
    response.headers.update(_DOCS_HEADERS)
    return response


class _Assets(StaticFiles):
    """Static files that browsers revalidate (a cheap 304): module imports carry no version to bust a cache."""

    def file_response(
        self, full_path: str | os.PathLike[str], stat_result: os.stat_result, scope: Scope, status_code: int = 200
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


# Machines get `{"detail"}` on these paths whatever they accept; a browser elsewhere gets a page.
_API_PREFIXES = ("/api/", "/v1/", "/metrics", "/static/")


async def not_found(request: Request, exc: Exception) -> Response:
    """A 404 page for a browser following a link, the usual JSON `detail` for everything else."""
    assert isinstance(exc, StarletteHTTPException)
    path = request.url.path
    if path.startswith(_API_PREFIXES) or "text/html" not in request.headers.get("accept", ""):
        return errors.http_error_response(request, exc)
    response = _page(request, "404.html", title="Page not found", path=path)
    response.status_code = 404
    return response


def install(app: FastAPI) -> None:
    """Add the pages and the 404 page, and mount /static (and Swagger UI's assets under it) on the app."""
    app.include_router(router)
    app.add_exception_handler(404, not_found)
    # Mounted before /static, which would otherwise claim these paths.
    app.mount(SWAGGER_UI, _Assets(directory=SWAGGER_ASSETS), name="swagger")
    app.mount("/static", _Assets(directory=WEB / "static"), name="static")
