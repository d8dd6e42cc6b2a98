"""Single sign-on with OpenID Connect: starting a sign-in, and turning the provider's answer into a session.

A sign-in's nonce and PKCE verifier are kept server-side (table `oidc_logins`, under the hash of its state),
and its state also in a short-lived cookie of the browser that started it: a callback is accepted once, only in
that browser, and only within PENDING_MINUTES. The provider's verified email finds the user, or creates one
(a normal user with a personal KB); MEMEX_OIDC_ADMIN_GROUP, when set, decides the admin flag at every sign-in.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import structlog

from memex.accounts import oidc, service, sessions, store, tokens
from memex.accounts.models import Login, User
from memex.audit import service as audit
from memex.audit.models import Action
from memex.errors import AuthenticationRequired, InvalidInput, MemexError, NotFound, PermissionDenied
from memex.runtime import Runtime
from memex.settings import Settings

log = structlog.get_logger("memex.sso")

PENDING_MINUTES = 10
MAX_NEXT = 2000
START_AGAIN = "start again from the login page"


@dataclass(frozen=True, slots=True)
class Started:
    """Where to send the browser, and the state to keep in its cookie."""

    url: str
    state: str


@dataclass(frozen=True, slots=True)
class Callback:
    """The provider's answer, as it came back in the callback's query."""

    state: str | None = None
    code: str | None = None
    error: str | None = None
    error_description: str | None = None
    iss: str | None = None


@dataclass(frozen=True, slots=True)
class SignedIn:
    login: Login
    next_path: str


def client(runtime: Runtime) -> oidc.OidcClient:
    """The configured provider, kept for the life of the process (its discovery and keys are cached in it)."""
    if not runtime.settings.oidc:
        raise NotFound("single sign-on is not configured on this server (MEMEX_OIDC_ISSUER)")
    found = runtime.caches.get("oidc")
    if not isinstance(found, oidc.OidcClient):
        found = oidc.OidcClient(runtime.settings)
        runtime.caches["oidc"] = found
    return found


def safe_next(value: str | None) -> str:
    """`value` if it is a path on this site, else "/": a crafted `next` must never send anyone elsewhere.

    The one rule for every redirect to a `next` (the login page's script applies the same): one leading "/", and
    no backslash, whitespace or control character anywhere, since browsers drop tabs and newlines from URLs
    ("/\t/evil" becomes "//evil") and read a backslash as a slash."""
    if not value or len(value) > MAX_NEXT or not value.startswith("/") or value[1:2] in ("/", "\\"):
        return "/"
    if any(c == "\\" or c.isspace() or ord(c) < 32 or 0x7F <= ord(c) <= 0x9F for c in value):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    return value


async def start(runtime: Runtime, *, redirect_uri: str, next_path: str) -> Started:
    """Begin a sign-in: remember its secrets, and say where the provider's login is."""
    provider = client(runtime)
    state, nonce, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(32), secrets.token_urlsafe(48)
    url = await provider.authorization_url(redirect_uri=redirect_uri, state=state, nonce=nonce, code_verifier=verifier)
    async with runtime.engine.begin() as conn:
        await store.insert_oidc_login(
            conn,
            state_hash=tokens.digest(state),
            nonce=nonce,
            code_verifier=verifier,
            redirect_uri=redirect_uri,
            next_path=safe_next(next_path),
            expires_at=datetime.now(UTC) + timedelta(minutes=PENDING_MINUTES),
        )
    return Started(url=url, state=state)


async def finish(runtime: Runtime, answer: Callback, *, browser_state: str | None) -> SignedIn:
    """Check the provider's answer against the sign-in this browser started, and open a session."""
    provider = client(runtime)
    if not answer.state:
        _refused("no_state")
        raise InvalidInput(f"the sign-in response has no state, so it cannot be trusted: {START_AGAIN}")
    if not browser_state or not hmac.compare_digest(browser_state.encode(), answer.state.encode()):
        _refused("foreign_state")
        raise InvalidInput(f"this sign-in response was not started in this browser: {START_AGAIN}")
    async with runtime.engine.begin() as conn:
        pending = await store.take_oidc_login(conn, tokens.digest(answer.state))
    if pending is None:
        _refused("used_state")
        raise InvalidInput(f"this sign-in response was already used, or has expired: {START_AGAIN}")
    stage = "provider_error"
    try:
        if answer.error:
            described = f": {answer.error_description[:300]}" if answer.error_description else ""
            raise AuthenticationRequired(f"the sign-in provider refused ({answer.error[:100]}{described})")
        stage = "no_code"
        if not answer.code:
            raise InvalidInput(f"the sign-in response has no authorization code: {START_AGAIN}")
        stage = "token"
        identity = await provider.identity(
            code=answer.code,
            code_verifier=pending.code_verifier,
            redirect_uri=pending.redirect_uri,
            nonce=pending.nonce,
            iss=answer.iss,
        )
        email = _checked_email(runtime.settings, identity.claims)
    except MemexError as exc:
        refused = exc if isinstance(exc, _EmailRefused) else None
        await _audit_refusal(
            runtime, None, refused.reason if refused else stage, email=refused.email if refused else None
        )
        raise
    user = await _user_for(runtime, identity, email)
    if not user.is_active:
        await _audit_refusal(runtime, user, "disabled")
        raise PermissionDenied("this account is disabled: ask an administrator")
    async with runtime.engine.begin() as conn:
        login = await sessions.open_session(conn, user, hours=runtime.settings.session_hours)
        await store.record_sso_login(conn, issuer=identity.issuer, subject=identity.subject, user_id=user.id)
        actor = service.actor_for(user)
        await audit.record(
            conn, action=Action.login, actor=actor, target_type="user", target_id=user.id, detail={"via": "sso"}
        )
    log.info("sso_login", user=str(user.id))
    return SignedIn(login=login, next_path=pending.next_path)


class _EmailRefused(PermissionDenied):
    def __init__(self, message: str, *, reason: str, email: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.email = email


def _checked_email(settings: Settings, claims: dict[str, Any]) -> str:
    """The email the provider vouches for, if it is verified and its domain is allowed here."""
    email = claims.get("email")
    if not isinstance(email, str) or not email.strip():
        raise _EmailRefused(
            "the sign-in provider shared no email address: Memex needs the 'email' scope (MEMEX_OIDC_SCOPES)",
            reason="no_email",
        )
    email = service.clean_email(email)
    if claims.get("email_verified") not in (True, "true"):
        raise _EmailRefused(
            f"the sign-in provider has not verified the email {email}: verify it there first",
            reason="unverified_email",
            email=email,
        )
    domain = email.rpartition("@")[2].lower()
    if settings.oidc_allowed_domains and domain not in settings.oidc_allowed_domains:
        raise _EmailRefused(
            f"accounts of the domain {domain} may not sign in here: ask an administrator",
            reason="domain",
            email=email,
        )
    return email


def _groups(settings: Settings, claims: dict[str, Any]) -> set[str]:
    found = claims.get(settings.oidc_groups_claim)
    if isinstance(found, str):
        return {found}
    return {str(group) for group in found} if isinstance(found, list) else set()


async def _user_for(runtime: Runtime, identity: oidc.Identity, email: str) -> User:
    """The user linked to this identity; else the user with its email, now linked; else a new user."""
    settings = runtime.settings
    admin = settings.oidc_admin_group in _groups(settings, identity.claims) if settings.oidc_admin_group else None
    async with runtime.engine.begin() as conn:
        user = await store.user_by_identity(conn, issuer=identity.issuer, subject=identity.subject)
        if user is None:
            user = await store.get_user_by_email(conn, email)
            if user is None:
                user = await service.add_user(conn, email=email, password_hash=None, is_admin=bool(admin))
                log.info("sso_user_created", user=str(user.id))
            await store.link_identity(conn, issuer=identity.issuer, subject=identity.subject, user_id=user.id)
        if admin is not None and admin != user.is_admin and user.is_active:
            updated = await store.update_flags(conn, user_id=user.id, is_active=None, is_admin=admin)
            assert updated is not None
            await audit.record(
                conn,
                action=Action.user_promoted if admin else Action.user_demoted,
                actor=None,
                target_type="user",
                target_id=user.id,
                detail={"email": user.email, "via": "sso", "group": settings.oidc_admin_group},
            )
            user = updated
    return user


def _refused(reason: str) -> None:
    """A callback refused before it could be tied to a sign-in: logged (never its code or state), not audited."""
    log.warning("sso_refused", reason=reason)


async def _audit_refusal(runtime: Runtime, user: User | None, reason: str, *, email: str | None = None) -> None:
    """A refused sign-in that came back to the browser that started it: logged and audited."""
    log.warning("sso_refused", reason=reason, user=str(user.id) if user else None)
    email = user.email if user else email
    detail = {"reason": f"sso_{reason}", "via": "sso"} | ({"email": email} if email else {})
    async with runtime.engine.begin() as conn:
        await audit.record(
            conn,
            action=Action.login_failed,
            actor=None,
            target_type="user",
            target_id=user.id if user else None,
            outcome="failure",
            detail=detail,
        )
