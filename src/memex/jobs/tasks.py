"""Job tasks, declared on a Blueprint bound to one Runtime; each is a few lines calling a service."""

from __future__ import annotations

import time
import uuid

import structlog
from procrastinate import Blueprint, JobContext, RetryStrategy

from memex import jobs, origin
from memex.audit import service as audit
from memex.documents import service
from memex.errors import MemexError
from memex.runtime import Runtime

# Three runs in all (now, after 5 s, after 25 s more): enough to ride out a database restart or a busy model.
RETRY = RetryStrategy(max_attempts=2, exponential_wait=5)
# A queued document with no job for this long lost its job (aborted at shutdown, or its worker died).
LOST_AFTER_SECONDS = 120
# A running job whose worker has not sent a heartbeat for this long is run again elsewhere.
STALLED_AFTER_SECONDS = 60
log = structlog.get_logger("memex.jobs")

# Finished jobs are kept this long for inspection; the documents keep their own status and error.
JOB_HISTORY_HOURS = 7 * 24


def reason(exc: BaseException, *, request_id: str | None = None, job_id: int | None = None) -> str:
    """What a user reads about a failed attempt: our own messages as they are, never an internal error's text
    (it may hold SQL and its parameters); the log keeps that, under the request id (or job id) named here."""
    if isinstance(exc, MemexError):
        return exc.message
    where = f"request id {request_id}" if request_id else f"job {job_id}"
    return (
        "Memex could not index this document because of an internal error; "
        f"an administrator can find the details in the logs ({where})"
    )


def detail(exc: BaseException) -> str:
    """What the log keeps about a failed attempt."""
    return f"{type(exc).__name__}: {exc}"


def blueprint(runtime: Runtime, *, retry: RetryStrategy = RETRY) -> Blueprint:
    """The tasks, closing over the runtime they work with (no module-level state)."""
    bp = Blueprint()

    @bp.task(name="ingest_document", queue=jobs.INGEST_QUEUE, retry=retry, pass_context=True)
    async def ingest_document(
        context: JobContext, document_id: str, request_id: str | None = None, owner: str | None = None
    ) -> None:
        """Parse, chunk, embed and store one uploaded document."""
        doc_id = uuid.UUID(document_id)
        attempt = context.job.attempts + 1
        started = time.perf_counter()
        # Every line the job logs carries the id of the request that queued it.
        with (
            origin.bound(origin.Origin(request_id=request_id)),
            structlog.contextvars.bound_contextvars(
                request_id=request_id, job_id=context.job.id, task="ingest_document", document_id=document_id
            ),
        ):
            log.info("job started", attempt=attempt)
            try:
                # A first attempt takes the next waiting documents with it; a retry runs alone, so a bad batch splits up.
                batch_of = context.job.id if context.job.attempts == 0 else None
                await service.ingest(
                    runtime, doc_id, job_id=batch_of, retry_wait_seconds=retry.wait + retry.exponential_wait
                )
            except Exception as exc:
                final = retry.max_attempts is not None and context.job.attempts >= retry.max_attempts
                log.warning("job failed", attempt=attempt, final=final, error=detail(exc)[:4000])
                shown = reason(exc, request_id=request_id, job_id=context.job.id)
                await service.attempt_failed(runtime, doc_id, reason=shown, final=final)
                raise
            log.info("job finished", attempt=attempt, duration_ms=round((time.perf_counter() - started) * 1000, 1))

    @bp.periodic(cron="*/2 * * * *")
    @bp.task(name="recover", queue=jobs.INGEST_QUEUE, pass_context=True)
    async def recover(context: JobContext, timestamp: int) -> None:
        """Run again the jobs of dead workers, queue again documents whose job was lost, forget old jobs."""
        assert context.app is not None
        manager = context.app.job_manager
        for job in await manager.get_stalled_jobs(
            task_name=jobs.INGEST_TASK, seconds_since_heartbeat=STALLED_AFTER_SECONDS
        ):
            await manager.retry_job(job)
        await service.requeue_lost(runtime, idle_seconds=LOST_AFTER_SECONDS)
        await manager.delete_old_jobs(
            nb_hours=JOB_HISTORY_HOURS, include_failed=True, include_cancelled=True, include_aborted=True
        )

    @bp.periodic(cron="17 * * * *")
    @bp.task(name="audit_retention", queue=jobs.INGEST_QUEUE, pass_context=True)
    async def audit_retention(context: JobContext, timestamp: int) -> None:
        """Delete audit entries older than MEMEX_AUDIT_RETENTION_DAYS (the only deletion the log allows)."""
        async with runtime.engine.begin() as conn:
            deleted = await audit.apply_retention(conn, days=runtime.settings.audit_retention_days)
        if deleted:
            log.info("audit entries deleted by retention", deleted=deleted)

    return bp
