"""Doctor fixtures: a check context on the test's database, with settings changed per test."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from memex.doctor.context import Context, Thresholds
from memex.doctor.models import Finding, Severity
from memex.runtime import Runtime
from memex.settings import Settings

MakeContext = Callable[..., Context]


@pytest.fixture
def make_context(runtime: Runtime, settings: Settings) -> MakeContext:
    """A context on the test's database; keyword arguments override settings (and `thresholds`)."""

    def make(*, thresholds: Thresholds | None = None, **overrides: Any) -> Context:
        changed = Settings(**(settings.model_dump() | overrides)) if overrides else settings
        return Context(
            settings=changed,
            engine=runtime.engine,
            database_url=runtime.database_url,
            thresholds=thresholds or Thresholds(),
        )

    return make


def by_check(findings: list[Finding], check: str) -> list[Finding]:
    return [f for f in findings if f.check == check]


def only(findings: list[Finding], check: str) -> Finding:
    found = by_check(findings, check)
    assert len(found) == 1, findings
    return found[0]


def severe(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity in (Severity.critical, Severity.high)]


@pytest.fixture
def offline_context(tmp_path: Path) -> MakeContext:
    """A context with no database, for the checks that read only the settings and this machine."""

    def make(*, thresholds: Thresholds | None = None, **overrides: Any) -> Context:
        base: dict[str, Any] = {"database_url": "postgresql://memex@127.0.0.1:1/memex", "data_dir": tmp_path / "data"}
        return Context(
            settings=Settings(**(base | overrides)),
            engine=None,
            database_url=None,
            thresholds=thresholds or Thresholds(),
        )

    return make


async def add_document(runtime: Runtime, *, name: str, status: str = "indexed", error: str | None = None) -> None:
    """A document row (no chunks), made through the real stores."""
    import hashlib
    import uuid

    import sqlalchemy as sa

    from memex.documents import store as documents
    from memex.kbs import service as kbs
    from memex.kbs.access import Actor

    data = f"# {name}\n\n{uuid.uuid4()}\n".encode()
    sha = hashlib.sha256(data).hexdigest()
    async with runtime.engine.begin() as conn:
        kb = await kbs.create_kb(conn, Actor.system(), name=f"kb {uuid.uuid4().hex[:8]}")
        doc_id = await documents.put_document(
            conn,
            kb_id=kb.id,
            source_path=name,
            title=name,
            mime="text/markdown",
            file_type="markdown",
            sha256=sha,
            data=data,
            status=status,
            modified_at=None,
        )
        await conn.execute(sa.text("UPDATE documents SET error = :e WHERE id = :id"), {"e": error, "id": doc_id})
