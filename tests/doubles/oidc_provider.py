"""A real OpenID provider for the single sign-on tests: `tests/doubles/oidc/provider.mjs` (oidc-provider on
Node) started on a free loopback port, and a browser's part of a sign-in, driven with httpx."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

HERE = Path(__file__).parent / "oidc"
CLIENT_ID = "memex-tests"
CLIENT_SECRET = "sso-client-secret-4e1f9a7c"
REDIRECT_STATUSES = (301, 302, 303, 307, 308)


@dataclass(frozen=True)
class Account:
    """Who signs in at the provider: made on the spot by its login step."""

    sub: str
    email: str | None
    email_verified: bool = True
    groups: tuple[str, ...] = ()

    def form(self) -> dict[str, str]:
        return {
            "sub": self.sub,
            "email": self.email or "",
            "email_verified": "true" if self.email_verified else "false",
            "groups": ",".join(self.groups),
        }


def missing() -> str | None:
    """Why the provider cannot start here, or None."""
    if shutil.which("node") is None:
        return "node is not installed"
    if not (HERE / "node_modules" / "oidc-provider").is_dir():
        return "oidc-provider is not installed: run `(cd tests/doubles/oidc && npm ci)`"
    return None


class OidcProvider:
    """The Node process, with one confidential client whose redirect URIs are given."""

    def __init__(self, redirect_uris: list[str]) -> None:
        clients = [{"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "redirect_uris": redirect_uris}]
        self._errors = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (kept open for the process, closed by stop)
        self._process = subprocess.Popen(
            ["node", str(HERE / "provider.mjs")],
            env={**os.environ, "OIDC_CLIENTS": json.dumps(clients)},
            stdout=subprocess.PIPE,
            stderr=self._errors,
            text=True,
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            self._errors.seek(0)
            raise RuntimeError(f"the OpenID provider did not start: {self._errors.read()[-2000:]}")
        self.issuer: str = json.loads(line)["issuer"]

    def stop(self) -> None:
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        finally:
            self._errors.close()
            if self._process.stdout:
                self._process.stdout.close()


def _absolute(response: httpx.Response) -> str:
    return str(response.url.join(response.headers["location"]))


async def authorize(browser: httpx.AsyncClient, url: str, account: Account, *, stop_at: str) -> str:
    """Go through the provider's login from its authorization URL as `account`; return the URL it then sends the
    browser to (the callback on `stop_at`'s host), without following it."""
    stop_host = urlsplit(stop_at).netloc
    response = await browser.get(url)
    while response.status_code in REDIRECT_STATUSES:
        target = _absolute(response)
        if urlsplit(target).netloc == stop_host:
            return target
        response = await browser.get(target)
    assert response.status_code == 200, response.text
    assert response.json()["prompt"] == "login", response.text
    response = await browser.post(f"{response.url}/login", data=account.form())
    while response.status_code in REDIRECT_STATUSES:
        target = _absolute(response)
        if urlsplit(target).netloc == stop_host:
            return target
        response = await browser.get(target)
    raise AssertionError(f"the provider did not send the browser back: {response.status_code} {response.text}")
