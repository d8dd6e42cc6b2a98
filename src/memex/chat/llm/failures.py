"""The words of an `LlmError`: the provider's own error text and status, never the API key."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator, Mapping

import httpx2

from memex.chat.llm.base import LlmError, LlmTimeout

_MAX_DETAIL = 300
_REDACTED = "[redacted]"


class Redactor:
    """Removes an API key from text, also when a provider echoes back only the start of it."""

    def __init__(self, secret: str | None) -> None:
        self._secret = secret or ""
        # Providers echo keys partly masked ("sk-abc123****wxyz"): any word sharing the key's first 8 characters goes.
        self._prefix = re.compile(rf"\S*{re.escape(self._secret[:8])}\S*") if len(self._secret) >= 12 else None

    def __call__(self, text: str) -> str:
        if self._secret:
            text = text.replace(self._secret, _REDACTED)
        if self._prefix is not None:
            text = self._prefix.sub(_REDACTED, text)
        return text


def body_text(body: object, fallback: str) -> str:
    """The error message in a provider's error body (`{"error": {"message": …}}`), else the raw body, shortened."""
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            kind = error.get("type")
            message: str = error["message"]
            return f"{message} ({kind})" if isinstance(kind, str) and kind else message
        if isinstance(error, str):
            return error
    if isinstance(body, str) and body.strip():
        return shorten(body.strip())
    return fallback


def shorten(text: str) -> str:
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 1] + "…"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        yield cause
        cause = cause.__cause__ or cause.__context__


def transport_text(exc: BaseException) -> str:
    """Why a connection failed, in a few words ("connection refused"), from the chain of causes."""
    chain = list(_chain(exc))
    if any(isinstance(cause, ConnectionRefusedError) for cause in chain):
        return "connection refused"
    if any(isinstance(cause, socket.gaierror) for cause in chain):
        return "unknown host name"
    if any(isinstance(cause, httpx2.ConnectTimeout) for cause in chain):
        return "connection timed out"
    transport = next((cause for cause in chain if isinstance(cause, httpx2.HTTPError) and str(cause)), None)
    return str(transport or exc) or type(exc).__name__


def is_connect_failure(exc: BaseException) -> bool:
    """Whether no connection was made at all (as opposed to one that broke off)."""
    return any(isinstance(cause, httpx2.ConnectError | httpx2.ConnectTimeout) for cause in _chain(exc))


def public_url(url: str) -> str:
    """The URL without any user name or password in it, fit for messages and logs."""
    parsed = httpx2.URL(url)
    return str(parsed.copy_with(userinfo=b"")) if parsed.userinfo else url


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asked to wait (`retry-after-ms`, or `retry-after` in seconds), if it said."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        try:
            return float(headers[name]) * scale
        except (KeyError, ValueError):
            continue
    return None


class Wording:
    """Builds the `LlmError`s of one provider; every message passes through the key's `Redactor`."""

    def __init__(self, *, describe: str, base_url: str, redact: Redactor) -> None:
        self._describe = describe
        self._base_url = base_url
        self._redact = redact

    def error(self, message: str) -> LlmError:
        return LlmError(self._redact(message))

    def status(self, status: int, body: object) -> LlmError:
        text = body_text(body, fallback="no error message")
        return self.error(f"the language model ({self._describe}) answered HTTP {status}: {text}")

    def transport(self, exc: BaseException) -> LlmError:
        text = transport_text(exc)
        if is_connect_failure(exc):
            message = f"cannot reach the language model at {self._base_url}: {text}"
            return LlmTimeout(self._redact(message)) if text == "connection timed out" else self.error(message)
        return self.error(f"the connection to the language model at {self._base_url} broke off: {text}")

    def broke_off(self, what: str) -> LlmError:
        return self.error(f"the language model ({self._describe}) {what}")
