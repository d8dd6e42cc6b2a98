"""A document that fails on an internal error tells its readers a sentence with a request id, never SQL; the log
keeps the detail. Reasons written for people (a file that cannot be parsed) are shown as they are."""

from __future__ import annotations

import sqlalchemy as sa
import structlog
from procrastinate import RetryStrategy

from memex.accounts.models import User
from memex.jobs.app import build_app, run_worker
from memex.runtime import Runtime
from tests.conftest import DATA
from tests.factories import Factory


async def drain(runtime: Runtime) -> None:
    """A real worker, retrying at once, until the queue is empty."""
    app = build_app(runtime, retry=RetryStrategy(max_attempts=2))
    async with app.open_async():
        await run_worker(app, concurrency=1, wait=False)


async def test_a_database_error_is_shown_as_a_sentence(make: Factory, runtime: Runtime, alice: User) -> None:
    kb = await make.kb(alice, name="team")
    client = await make.as_user(alice)
    # A real database error in the job's store step: chunks of this test's database refuse every row.
    async with runtime.engine.begin() as conn:
        await conn.execute(sa.text("ALTER TABLE chunks ADD CONSTRAINT refuse_all CHECK (ordinal < 0) NOT VALID"))
    uploaded = await client.post(
        f"/api/kbs/{kb.id}/documents",
        files={"files": ("plan.md", b"# Plan\n\nThe quorbit schedule.\n")},
        headers={"X-Request-ID": "req-failing-upload-1"},
    )
    assert uploaded.status_code == 202, uploaded.text
    doc_id = uploaded.json()["documents"][0]["id"]
    with structlog.testing.capture_logs() as logs:
        await drain(runtime)

    shown = (await client.get(f"/api/documents/{doc_id}")).json()
    assert shown["status"] == "failed"
    assert shown["error"] == (
        "Memex could not index this document because of an internal error; "
        "an administrator can find the details in the logs (request id req-failing-upload-1)"
    )
    listed = (await client.get(f"/api/kbs/{kb.id}/documents")).json()["documents"]
    assert [d["error"] for d in listed] == [shown["error"]]
    details = [e["error"] for e in logs if e["event"] == "job failed"]
    assert len(details) == 3 and all("CheckViolation" in d and "refuse_all" in d for d in details)


async def test_a_parse_error_is_shown_as_written(make: Factory, runtime: Runtime, alice: User) -> None:
    kb = await make.kb(alice, name="team")
    client = await make.as_user(alice)
    uploaded = await client.post(
        f"/api/kbs/{kb.id}/documents", files={"files": ("corrupt.pdf", (DATA / "corrupt.pdf").read_bytes())}
    )
    await drain(runtime)
    shown = (await client.get(f"/api/documents/{uploaded.json()['documents'][0]['id']}")).json()
    assert shown["status"] == "failed" and "PDF" in shown["error"] and "internal error" not in shown["error"]
