"""Queue and document checks: failed documents, jobs running far too long, jobs waiting with nobody to run them."""

from __future__ import annotations

from memex.doctor import store
from memex.doctor.context import Context
from memex.doctor.models import Finding, Severity

# A worker heartbeats every few seconds; one silent this long is gone.
WORKER_ALIVE_SECONDS = 120


async def failed_documents(ctx: Context) -> list[Finding]:
    async with ctx.engine_or_fail().connect() as conn:
        counts = await store.document_counts(conn)
        reasons = await store.failure_reasons(conn) if counts.get("failed") else []
    failed, total = counts.get("failed", 0), sum(counts.values())
    if not failed:
        return [Finding(Severity.info, "documents.failed", f"no failed documents ({total:,} in all)", data=counts)]
    share = failed / total
    listed = "; ".join(f"{n}× {reason}" for reason, n in reasons)
    return [
        Finding(
            Severity.medium if share > 0.1 else Severity.low,
            "documents.failed",
            f"{failed:,} of {total:,} documents failed to index ({listed}).",
            "Each failed document keeps its reason (GET /api/kbs/{kb}/documents, or the web UI): fix or convert the "
            "file and upload it again, or delete it. Many alike point at a parser limit or a missing dependency.",
            {"counts": counts, "reasons": [{"reason": r, "count": n} for r, n in reasons]},
        )
    ]


async def stuck_jobs(ctx: Context) -> list[Finding]:
    limits = ctx.thresholds
    async with ctx.engine_or_fail().connect() as conn:
        running = await store.long_running_jobs(conn, seconds=limits.job_running_seconds)
        waiting = await store.waiting_jobs(conn, seconds=limits.job_waiting_seconds)
        workers = await store.live_workers(conn, seconds=WORKER_ALIVE_SECONDS)
    findings = []
    if running:
        oldest = running[0]
        findings.append(
            Finding(
                Severity.high,
                "jobs.running_too_long",
                f"{len(running)} job(s) have been running for over {limits.job_running_seconds / 3600:g} hours "
                f"(the oldest, #{oldest.id} {oldest.task}, for {oldest.seconds / 3600:.1f} hours).",
                "A job this long is hung or its worker died without being noticed: check the worker's logs for the job "
                "id, restart the worker (its jobs are retried), and if a document keeps hanging, delete it.",
                {"jobs": [{"id": j.id, "task": j.task, "seconds": round(j.seconds)} for j in running]},
            )
        )
    if waiting:
        oldest = waiting[0]
        nobody = workers == 0
        findings.append(
            Finding(
                Severity.high if nobody else Severity.medium,
                "jobs.waiting_too_long",
                f"{len(waiting)} job(s) have waited over {limits.job_waiting_seconds / 60:g} minutes to run (the oldest, "
                f"#{oldest.id} {oldest.task}, {oldest.seconds / 3600:.1f} hours)"
                + (", and no worker is running." if nobody else f", with {workers} worker(s) running."),
                "Start a worker (`memex worker`, or `memex serve` without --no-worker)."
                if nobody
                else "The workers cannot keep up: add workers or raise `memex worker --concurrency`.",
                {
                    "jobs": [{"id": j.id, "task": j.task, "seconds": round(j.seconds)} for j in waiting],
                    "workers": workers,
                },
            )
        )
    if not findings:
        findings.append(
            Finding(Severity.info, "jobs.queue", f"no stuck or long-waiting jobs; {workers} worker(s) running")
        )
    return findings
