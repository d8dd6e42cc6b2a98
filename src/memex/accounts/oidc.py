"""The OpenID Connect relying party, built on Authlib: discovery, the authorization request (code flow with
PKCE S256, state and nonce), the code exchange, and ID token validation (signature against the provider's
JWKS, issuer, audience, expiry, nonce). It knows nothing of users or the database (see `sso.py`).

Discovery and the provider's keys are fetched with timeouts and cached for the life of the process; keys are
fetched again when a token names one not seen yet (a key rotation). Codes, tokens and secrets are never logged.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import httpx2
import structlog
from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuthError
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import ClaimError, ExpiredTokenError, InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

from memex.errors import AuthenticationRequired, ServiceUnavailable
from memex.settings import Settings

log = structlog.get_logger("memex.sso")

TIMEOUT = httpx2.Timeout(10.0, connect=5.0)
METADATA_SECONDS = 3600.0
# A token naming an unknown key makes us fetch the keys again, but not more often than this: forged tokens
# must not turn Memex into a flood of requests to the provider.
KEYS_REFETCH_SECONDS = 60.0
CLOCK_LEEWAY_SECONDS = 60
# Asymmetric algorithms only: "none" and the HMAC ones (keyed with the client secret) are never accepted.
SIGNING_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")


@dataclass(frozen=True, slots=True)
class ProviderMetadata:
    """What Memex uses of the provider's discovery document."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None
    algorithms: tuple[str, ...]
    auth_methods: tuple[str, ...]
    iss_parameter: bool


@dataclass(frozen=True, slots=True)
class Identity:
    """A user as the provider vouches for them: the validated ID token's claims, with userinfo's added when the
    token lacks some that Memex needs."""

    issuer: str
    subject: str
    claims: dict[str, Any]


def _provider_unavailable(issuer: str, what: str) -> ServiceUnavailable:
    return ServiceUnavailable(f"the sign-in provider {issuer} could not be used ({what}): try again later")


class OidcClient:
    """One provider, as configured by MEMEX_OIDC_*; kept in the runtime's caches (see `sso.client`)."""

    def __init__(self, settings: Settings) -> None:
        assert settings.oidc_issuer and settings.oidc_client_id
        self.issuer = settings.oidc_issuer
        self.client_id = settings.oidc_client_id
        self._secret = settings.oidc_client_secret.get_secret_value() if settings.oidc_client_secret else None
        self.scope = settings.oidc_scopes
        # Claims Memex decides with: asked of the userinfo endpoint when the ID token lacks one.
        groups = (settings.oidc_groups_claim,) if settings.oidc_admin_group else ()
        self._wanted = ("email", "email_verified", *groups)
        self._metadata: ProviderMetadata | None = None
        self._metadata_at = 0.0
        self._keys: KeySet | None = None
        self._keys_at = 0.0
        self._lock = asyncio.Lock()

    def _http(self, *, redirect_uri: str | None = None, auth_method: str | None = None) -> AsyncOAuth2Client:
        return AsyncOAuth2Client(
            client_id=self.client_id,
            client_secret=self._secret,
            token_endpoint_auth_method=auth_method,
            scope=self.scope,
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
            timeout=TIMEOUT,
            follow_redirects=False,
        )

    async def _get_json(self, url: str, what: str, *, headers: dict[str, str] | None = None) -> dict[str, Any]:
        try:
            async with self._http() as http:
                response = await http.request("GET", url, headers=headers, withhold_token=True)
        except httpx2.HTTPError as exc:
            raise _provider_unavailable(self.issuer, f"{what} unreachable: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise _provider_unavailable(self.issuer, f"{what} answered HTTP {response.status_code}")
        try:
            found = response.json()
        except ValueError:
            found = None
        if not isinstance(found, dict):
            raise _provider_unavailable(self.issuer, f"{what} is not a JSON object")
        return found

    async def metadata(self) -> ProviderMetadata:
        """The provider's discovery document, checked to name the configured issuer exactly."""
        async with self._lock:
            if self._metadata is None or time.monotonic() - self._metadata_at > METADATA_SECONDS:
                self._metadata = await self._discover()
                self._metadata_at = time.monotonic()
            return self._metadata

    async def _discover(self) -> ProviderMetadata:
        url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        found = await self._get_json(url, "its discovery document")
        if found.get("issuer") != self.issuer:
            raise ServiceUnavailable(
                f"single sign-on is misconfigured: the discovery document at {url} names the issuer "
                f"{str(found.get('issuer'))[:200]!r}, not {self.issuer!r}; set MEMEX_OIDC_ISSUER to exactly the "
                "provider's issuer"
            )
        missing = [name for name in ("authorization_endpoint", "token_endpoint", "jwks_uri") if not found.get(name)]
        if missing:
            raise _provider_unavailable(self.issuer, f"its discovery document lacks {', '.join(missing)}")
        offered = found.get("id_token_signing_alg_values_supported") or ["RS256"]
        return ProviderMetadata(
            issuer=self.issuer,
            authorization_endpoint=str(found["authorization_endpoint"]),
            token_endpoint=str(found["token_endpoint"]),
            jwks_uri=str(found["jwks_uri"]),
            userinfo_endpoint=str(found["userinfo_endpoint"]) if found.get("userinfo_endpoint") else None,
            algorithms=tuple(alg for alg in SIGNING_ALGORITHMS if alg in offered),
            auth_methods=tuple(found.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]),
            iss_parameter=found.get("authorization_response_iss_parameter_supported") is True,
        )

    async def _key_set(self, meta: ProviderMetadata, *, refresh: bool = False) -> KeySet:
        async with self._lock:
            stale = time.monotonic() - self._keys_at > (KEYS_REFETCH_SECONDS if refresh else METADATA_SECONDS)
            if self._keys is None or stale:
                found = await self._get_json(meta.jwks_uri, "its key set (jwks_uri)")
                try:
                    self._keys = KeySet.import_key_set(found)  # type: ignore[arg-type]
                except (JoseError, ValueError, TypeError, KeyError) as exc:
                    raise _provider_unavailable(self.issuer, "its key set cannot be read") from exc
                self._keys_at = time.monotonic()
            return self._keys

    async def authorization_url(self, *, redirect_uri: str, state: str, nonce: str, code_verifier: str) -> str:
        """Where to send the browser: the provider's login, for a code bound to this state, nonce and verifier."""
        meta = await self.metadata()
        async with self._http(redirect_uri=redirect_uri) as http:
            url, _ = http.create_authorization_url(
                meta.authorization_endpoint, state=state, code_verifier=code_verifier, nonce=nonce
            )
        return str(url)

    def check_response_issuer(self, meta: ProviderMetadata, iss: str | None) -> None:
        """RFC 9207: the authorization response names its issuer; a different one is a mix-up attack."""
        if iss is None and not meta.iss_parameter:
            return
        if iss != self.issuer:
            named = "no issuer" if iss is None else f"the issuer {iss[:200]!r}"
            raise AuthenticationRequired(
                f"the sign-in response names {named}, not {self.issuer!r}: it did not come from the configured "
                "provider, and was refused"
            )

    async def identity(
        self, *, code: str, code_verifier: str, redirect_uri: str, nonce: str, iss: str | None
    ) -> Identity:
        """Exchange the code (with the PKCE verifier) and return the validated identity behind it."""
        meta = await self.metadata()
        self.check_response_issuer(meta, iss)
        tokens = await self._exchange(meta, code=code, code_verifier=code_verifier, redirect_uri=redirect_uri)
        id_token, access_token = tokens.get("id_token"), tokens.get("access_token")
        if not isinstance(id_token, str):
            raise AuthenticationRequired("the sign-in provider returned no ID token: is the 'openid' scope asked?")
        claims = await self._validate(meta, id_token, nonce=nonce, access_token=access_token)
        lacking = any(name not in claims for name in self._wanted)
        if lacking and meta.userinfo_endpoint and isinstance(access_token, str):
            claims = {**await self._userinfo(meta.userinfo_endpoint, access_token, claims["sub"]), **claims}
        return Identity(issuer=self.issuer, subject=str(claims["sub"]), claims=claims)

    async def _exchange(
        self, meta: ProviderMetadata, *, code: str, code_verifier: str, redirect_uri: str
    ) -> dict[str, Any]:
        if self._secret is None:
            method = "none"
        elif "client_secret_basic" in meta.auth_methods or "client_secret_post" not in meta.auth_methods:
            method = "client_secret_basic"
        else:
            method = "client_secret_post"
        try:
            async with self._http(redirect_uri=redirect_uri, auth_method=method) as http:
                token = await http.fetch_token(
                    meta.token_endpoint, grant_type="authorization_code", code=code, code_verifier=code_verifier
                )
        except OAuthError as exc:
            raise AuthenticationRequired(
                f"the sign-in provider refused the authorization code ({str(exc.error)[:100]}): sign in again"
            ) from exc
        except httpx2.HTTPError as exc:
            raise _provider_unavailable(self.issuer, f"its token endpoint failed: {type(exc).__name__}") from exc
        except ValueError as exc:
            raise _provider_unavailable(self.issuer, "its token endpoint did not answer JSON") from exc
        return dict(token)

    async def _validate(
        self, meta: ProviderMetadata, id_token: str, *, nonce: str, access_token: object
    ) -> dict[str, Any]:
        registry = JWSRegistry(algorithms=list(meta.algorithms))
        try:
            try:
                token = jwt.decode(id_token, await self._key_set(meta), registry=registry)
            except InvalidKeyIdError:
                token = jwt.decode(id_token, await self._key_set(meta, refresh=True), registry=registry)
        except (JoseError, ValueError) as exc:
            reason = exc.error if isinstance(exc, JoseError) else "malformed"
            raise AuthenticationRequired(
                f"the ID token does not verify against the provider's keys ({reason}): it was refused"
            ) from exc
        options = {
            "iss": {"essential": True, "value": self.issuer},
            "aud": {"essential": True, "value": self.client_id},
            "sub": {"essential": True},
            "exp": {"essential": True},
            "iat": {"essential": True},
        }
        params = {"nonce": nonce, "client_id": self.client_id}
        if isinstance(access_token, str):
            params["access_token"] = access_token
        claims = CodeIDToken(token.claims, token.header, options, params)
        try:
            claims.validate(leeway=CLOCK_LEEWAY_SECONDS)
        except ClaimError as exc:
            raise AuthenticationRequired(_claim_problem(exc, claims, self.issuer)) from exc
        return dict(claims)

    async def _userinfo(self, url: str, access_token: str, subject: object) -> dict[str, Any]:
        found = await self._get_json(url, "its userinfo endpoint", headers={"Authorization": f"Bearer {access_token}"})
        if found.get("sub") != subject:
            # OpenID Connect Core 5.3.2: userinfo about someone else must not be used.
            raise AuthenticationRequired("the provider's userinfo is about another user than the ID token: refused")
        return found


def _claim_problem(exc: ClaimError, claims: dict[str, Any], issuer: str) -> str:
    """What was wrong with the ID token, in words (never the token itself)."""
    if isinstance(exc, ExpiredTokenError):
        return "the ID token has expired (or this server's clock is wrong): sign in again"
    if exc.claim == "iss":
        return (
            f"the ID token was issued by {str(claims.get('iss'))[:200]!r}, not by the configured issuer {issuer!r}: "
            "it was refused"
        )
    if exc.claim == "nonce":
        return "the ID token's nonce does not match this sign-in (a replayed or injected token): it was refused"
    if exc.claim in ("aud", "azp"):
        return "the ID token was issued for another client (its audience is not MEMEX_OIDC_CLIENT_ID): it was refused"
    if exc.claim == "at_hash":
        return "the ID token does not match its access token (at_hash): it was refused"
    return f"the ID token's {exc.claim!r} claim is missing or invalid: it was refused"
