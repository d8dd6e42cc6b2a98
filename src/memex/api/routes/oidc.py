"""Single sign-on with OpenID Connect: `/api/auth/oidc/login` sends the browser to the provider, and
`/api/auth/oidc/callback` turns its answer into a session. Both are public; the rules are in `accounts/sso.py`.

A refused callback answers its 4xx as the login page with the reason (browsers) or as `{"detail"}` (others).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import RedirectResponse

from memex.accounts import sso
from memex.api import auth
from memex.api.deps import RuntimeDep, SettingsDep
from memex.api.routes.web import login_response
from memex.api.schemas import error_responses
from memex.errors import MemexError
from memex.settings import Settings

router = APIRouter(prefix="/api/auth/oidc", tags=["auth"], responses=error_responses(400, 401, 403, 404, 422, 503))

# The state of the sign-in this browser started; only the callback reads it.
STATE_COOKIE = "memex_oidc_state"
_COOKIE_PATH = "/api/auth/oidc"


def _callback_url(request: Request, settings: Settings) -> str:
    if settings.public_url:
        return settings.public_url.rstrip("/") + "/api/auth/oidc/callback"
    return str(request.url_for("oidc_callback"))


@router.get(
    "/login", status_code=302, response_class=RedirectResponse, responses={302: {"description": "to the provider"}}
)
async def oidc_login(
    request: Request,
    runtime: RuntimeDep,
    settings: SettingsDep,
    next: Annotated[str, Query(max_length=sso.MAX_NEXT, description="Where to go once signed in (a path)")] = "/",
) -> Response:
    """Start single sign-on: redirect to the OpenID provider (authorization code with PKCE, state and nonce)."""
    started = await sso.start(runtime, redirect_uri=_callback_url(request, settings), next_path=sso.safe_next(next))
    response = RedirectResponse(started.url, status_code=302)
    response.set_cookie(
        STATE_COOKIE,
        started.state,
        max_age=sso.PENDING_MINUTES * 60,
        path=_COOKIE_PATH,
        secure=auth.secure_cookies(request, settings),
        httponly=True,
        samesite="lax",  # sent on the provider's top-level redirect back, not on cross-site subrequests
    )
    return response


@router.get(
    "/callback", status_code=303, response_class=RedirectResponse, responses={303: {"description": "signed in"}}
)
async def oidc_callback(
    request: Request,
    runtime: RuntimeDep,
    settings: SettingsDep,
    state: Annotated[str | None, Query(max_length=512)] = None,
    code: Annotated[str | None, Query(max_length=4096)] = None,
    error: Annotated[str | None, Query(max_length=256)] = None,
    error_description: Annotated[str | None, Query(max_length=2048)] = None,
    iss: Annotated[str | None, Query(max_length=2048)] = None,
) -> Response:
    """The provider's answer: check it, find or create the user, set the session cookies, go to `next`."""
    answer = sso.Callback(state=state, code=code, error=error, error_description=error_description, iss=iss)
    try:
        signed = await sso.finish(runtime, answer, browser_state=request.cookies.get(STATE_COOKIE))
    except MemexError as exc:
        if "text/html" in request.headers.get("accept", ""):
            return login_response(request, error=exc.message, status_code=exc.status_code)
        raise
    response = RedirectResponse(signed.next_path, status_code=303)
    auth.set_session_cookies(response, request, settings, token=signed.login.token, csrf_token=signed.login.csrf_token)
    response.delete_cookie(
        STATE_COOKIE, path=_COOKIE_PATH, secure=auth.secure_cookies(request, settings), httponly=True
    )
    return response
