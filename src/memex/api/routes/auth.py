"""Logging in and out, and who am I: `/api/auth/*`. Login is public; the rest needs a session or key."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from memex.accounts import credentials, service, sessions
from memex.api import auth
from memex.api.deps import ConnDep, CurrentActor, RuntimeDep, SettingsDep, login_rate_limit
from memex.api.schemas import DetailOut, LoginIn, MeOut, PasswordChangeIn, SessionOut, UserOut, error_responses
from memex.errors import AuthenticationRequired

router = APIRouter(prefix="/api/auth", tags=["auth"], responses=error_responses(400, 401, 403, 422, 429))


@router.post("/login", dependencies=[Depends(login_rate_limit)])
async def login(
    body: LoginIn, request: Request, response: Response, runtime: RuntimeDep, settings: SettingsDep
) -> SessionOut:
    """Log in with email and password: sets the session and CSRF cookies. Repeated failures from one address
    make that address wait between attempts (429 with Retry-After); the account itself is never locked."""
    result = await sessions.login(runtime, email=body.email, password=body.password)
    auth.set_session_cookies(response, request, settings, token=result.token, csrf_token=result.csrf_token)
    return SessionOut(user=UserOut.of(result.user), csrf_token=result.csrf_token)


@router.post("/logout", status_code=204)
async def logout(request: Request, actor: CurrentActor, conn: ConnDep, settings: SettingsDep) -> Response:
    """End the current session server-side and clear its cookies (a no-op for API keys)."""
    found = await auth.authentication(request)
    if found.session_token:
        await sessions.logout(conn, actor, found.session_token)
    response = Response(status_code=204)
    auth.clear_session_cookies(response, request, settings)
    return response


@router.get("/me")
async def me(request: Request, response: Response, actor: CurrentActor, conn: ConnDep, settings: SettingsDep) -> MeOut:
    """The current user, how the request was authenticated, and the CSRF token of a session."""
    found = await auth.authentication(request)
    if actor.user_id is None:
        raise AuthenticationRequired()
    user = await service.get_user(conn, actor.user_id)
    if found.via == "session" and found.session_token and found.csrf_token:
        auth.set_session_cookies(response, request, settings, token=found.session_token, csrf_token=found.csrf_token)
    return MeOut(
        user=UserOut.of(user),
        csrf_token=found.csrf_token,
        auth="disabled" if found.via == "disabled" else "key" if found.via == "key" else "session",
        scopes=sorted(actor.scopes),
        kbs=None if actor.kb_ids is None else sorted(actor.kb_ids),
    )


# Counted like logins per client address: a stolen session must not become a fast way to guess the password.
@router.post("/password", dependencies=[Depends(login_rate_limit)])
async def change_password(body: PasswordChangeIn, request: Request, actor: CurrentActor, conn: ConnDep) -> DetailOut:
    """Change your own password (the current one is needed); your other sessions are logged out, this one stays."""
    found = await auth.authentication(request)
    ended = await credentials.change_password(
        conn, actor, current=body.current_password, new=body.new_password, session_token=found.session_token
    )
    others = "no other session was open" if ended == 0 else f"{ended} other session{'s' * (ended != 1)} logged out"
    return DetailOut(detail=f"Your password has been changed ({others}).")
