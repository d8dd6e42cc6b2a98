"""Where the work in progress came from: the request id and client address of an API request, or a job's request id.

The API's middleware sets it for each request, a job sets it from its arguments; services read it (the audit log
records the address, enqueued jobs carry the request id) without knowing anything about HTTP.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Origin:
    """Nothing set means local work: a CLI command, or a job nobody asked for through the API."""

    request_id: str | None = None
    ip: str | None = None


_LOCAL = Origin()
_current: ContextVar[Origin | None] = ContextVar("memex_origin", default=None)


def current() -> Origin:
    return _current.get() or _LOCAL


@contextmanager
def bound(origin: Origin) -> Iterator[None]:
    """Make `origin` current for the code run inside the block (and the tasks it starts)."""
    token = _current.set(origin)
    try:
        yield
    finally:
        _current.reset(token)
