"""Failed documents and stuck jobs, as real rows in the documents and procrastinate tables."""

from __future__ import annotations

import sqlalchemy as sa

from memex.doctor import jobs
from memex.doctor.models import Severity
from memex.runtime import Runtime
from tests.doctor.conftest import MakeContext, add_document, only


async def test_failed_documents_are_counted_with_their_reasons(runtime: Runtime, make_context: MakeContext) -> None:
    assert only(await jobs.failed_documents(make_context()), "documents.failed").severity is Severity.info
    await add_document(runtime, name="good.md")
    await add_document(runtime, name="broken.pdf", status="failed", error="the PDF is encrypted")
    finding = only(await jobs.failed_documents(make_context()), "documents.failed")
    assert finding.severity is Severity.medium  # one of two
    assert "1 of 2 documents" in finding.found and "the PDF is encrypted" in finding.found


async def _job(runtime: Runtime, *, status: str, event: str, hours_ago: float) -> None:
    async with runtime.engine.begin() as conn:
        job_id = (
            await conn.execute(
                sa.text(
                    "INSERT INTO procrastinate_jobs (queue_name, task_name, status, args) "
                    "VALUES ('ingest', 'memex:ingest_document', CAST(:s AS procrastinate_job_status), '{}') RETURNING id"
                ),
                {"s": status},
            )
        ).scalar_one()
        await conn.execute(
            sa.text(
                "INSERT INTO procrastinate_events (job_id, type) VALUES (:id, CAST(:t AS procrastinate_job_event_type))"
            ),
            {"id": job_id, "t": event},
        )
        # Its events (the one above, and the `deferred` one procrastinate's trigger wrote) happened long ago.
        await conn.execute(
            sa.text("UPDATE procrastinate_events SET at = now() - :h * interval '1 hour' WHERE job_id = :id"),
            {"id": job_id, "h": hours_ago},
        )


async def test_job_running_for_hours_is_high(runtime: Runtime, make_context: MakeContext) -> None:
    await _job(runtime, status="doing", event="started", hours_ago=0.1)
    assert only(await jobs.stuck_jobs(make_context()), "jobs.queue").severity is Severity.info
    await _job(runtime, status="doing", event="started", hours_ago=3)
    finding = only(await jobs.stuck_jobs(make_context()), "jobs.running_too_long")
    assert finding.severity is Severity.high and "3.0 hours" in finding.found


async def test_old_queued_job_with_no_worker_is_high(runtime: Runtime, make_context: MakeContext) -> None:
    await _job(runtime, status="todo", event="deferred", hours_ago=2)
    finding = only(await jobs.stuck_jobs(make_context()), "jobs.waiting_too_long")
    assert finding.severity is Severity.high and "no worker" in finding.found and "memex worker" in finding.fix
