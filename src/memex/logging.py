"""Structured logs (structlog), JSON or console, with secrets redacted before anything is written."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from memex.settings import Settings

# Field names whose values are never logged. Not "tokens" (counts) nor "passages".
_SECRET_KEYS = re.compile(
    r"passw(or)?d|passphrase|(^|_)pass($|_)|secret|token(?!s)|api[_-]?key|authorization|cookie|credential", re.I
)
_SECRET_VALUES = [
    re.compile(r"(mx_[A-Za-z0-9]{4,}_)[A-Za-z0-9_\-]+"),  # Memex API keys: keep the visible prefix only
    re.compile(r"(Bearer\s+)[^\s\"']+", re.I),
    re.compile(r"(postgres(?:ql)?(?:\+\w+)?://[^:/@\s]+:)[^@\s]+(@)"),  # passwords inside database URLs
    re.compile(r"(redis://[^:/@\s]*:)[^@\s]+(@)"),
]


_EMAIL = re.compile(r"[\w.%+-]+@[\w-]+(?:\.[\w-]+)+")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b", re.I)
# Runs of digits with spaces, dashes, dots, slashes or brackets between them (cards, phones, account numbers).
_DIGIT_RUN = re.compile(r"(?<![\w+])\+?\(?\d(?:[ ./()-]{0,2}\d)+\)?(?!\w)")


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch) * (2 if i % 2 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0


def _mask_digits(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = "".join(c for c in text if c.isdigit())
    if 13 <= len(digits) <= 19 and _luhn(digits):
        return "[card]"
    # Nine digits at least (or a leading +), so that dates, years and short numbers stay readable.
    if 9 <= len(digits) <= 15 or (text.startswith("+") and 7 <= len(digits) <= 15):
        return "[phone]"
    return "[number]" if len(digits) > 15 else text


def mask_personal_data(text: str) -> str:
    """The text with emails, IBANs, card numbers (Luhn-valid), phone-like and longer numbers replaced by placeholders."""
    text = _EMAIL.sub("[email]", text)
    text = _IBAN.sub(lambda m: "[iban]" if sum(c.isdigit() for c in m.group(0)) >= 8 else m.group(0), text)
    return _DIGIT_RUN.sub(_mask_digits, text)


def query_fields(settings: Settings, text: str, *, name: str = "query") -> dict[str, str]:
    """A user's query or question as a log field, per MEMEX_LOG_QUERIES: masked, in full, or left out."""
    if settings.log_queries == "off":
        return {}
    return {name: text if settings.log_queries == "full" else mask_personal_data(text)}


def redact_text(text: str) -> str:
    for pattern in _SECRET_VALUES:
        text = pattern.sub(lambda m: m.group(1) + "***" + (m.group(2) if m.lastindex and m.lastindex > 1 else ""), text)
    return text


def _redact(value: Any, key: str = "") -> Any:
    if key and _SECRET_KEYS.search(key):
        return "***"
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: _redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(v) for v in value]
    return value


def redact_processor(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Structlog processor: masks secret-looking keys and secret-shaped values anywhere in the event."""
    return {k: _redact(v, k) if k != "event" else redact_text(str(v)) for k, v in event.items()}


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg, unused-ignore]
    """Writes to whatever sys.stderr is at the time of the record, so a replaced stderr is followed."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def configure_logging(settings: Settings) -> None:
    """Route structlog and the standard library through one pipeline that redacts, then renders."""
    level = logging.getLevelName(settings.log_level.upper())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact_processor,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if settings.log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = _StderrHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level if isinstance(level, int) else logging.INFO)
    # uvicorn's own access log would duplicate ours, without user or latency.
    logging.getLogger("uvicorn.access").disabled = True
    if root.level > logging.DEBUG:
        # Start-up chatter (each migration check, each task registered) drowns what an operator needs to see.
        for name in ("alembic", "procrastinate", "pgserver"):
            logging.getLogger(name).setLevel(logging.WARNING)
