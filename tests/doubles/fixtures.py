"""Pytest fixtures for the LLM doubles (registered from tests/conftest.py).

`openai_server` / `anthropic_server` are the session's servers (for module-scoped fixtures that need a URL
early, such as a `memex serve` process); `openai_double` / `anthropic_double` are the same servers reset for one
test, and fail the test if a request is still running at its end (a stream some client never closed).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TypeVar

import pytest

from tests.doubles.anthropic_server import AnthropicDouble
from tests.doubles.openai_server import OpenAIDouble
from tests.doubles.server import LlmDouble

D = TypeVar("D", bound=LlmDouble)
# A client that went away may take a moment to be noticed by the server.
_SETTLE_SECONDS = 5.0


@pytest.fixture(scope="session")
def openai_server() -> Iterator[OpenAIDouble]:
    double = OpenAIDouble()
    double.start()
    yield double
    double.stop()


@pytest.fixture(scope="session")
def anthropic_server() -> Iterator[AnthropicDouble]:
    double = AnthropicDouble()
    double.start()
    yield double
    double.stop()


def _fresh(double: D) -> Iterator[D]:
    double.reset()
    yield double
    double.wait_for_sync(
        lambda d: d.active == 0,
        timeout=_SETTLE_SECONDS,
        what="every request to end (a client left a stream open, or the double never saw it leave)",
    )


@pytest.fixture
def openai_double(openai_server: OpenAIDouble) -> Iterator[OpenAIDouble]:
    """The OpenAI double with no script and no records; `base_url` ends in /v1."""
    yield from _fresh(openai_server)


@pytest.fixture
def anthropic_double(anthropic_server: AnthropicDouble) -> Iterator[AnthropicDouble]:
    """The Anthropic double with no script and no records; `base_url` is the bare origin."""
    yield from _fresh(anthropic_server)
