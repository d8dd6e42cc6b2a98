"""Runs every check concurrently, each bounded in time; a check that fails becomes a finding, not a crash."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence

from memex.doctor import database, jobs, security, services, storage, tls, tuning
from memex.doctor.checklist import MANUAL
from memex.doctor.context import Context
from memex.doctor.models import Finding, Report, Severity

Check = Callable[[Context], Awaitable[list[Finding]]]

# Checks that need only the settings and this machine.
CHECKS: tuple[Check, ...] = (
    security.authentication,
    security.secrets,
    security.cors_and_hosts,
    security.rate_limits,
    security.metrics,
    tls.public_url,
    storage.disk,
    services.llm,
    services.redis_check,
)
# Checks that read the database; skipped (with one critical finding) when it does not answer.
DATABASE_CHECKS: tuple[Check, ...] = (
    security.admin_password,
    database.versions,
    database.migrations,
    database.embedding_model,
    database.hnsw_bloat,
    tuning.postgres_settings,
    storage.backups,
    jobs.failed_documents,
    jobs.stuck_jobs,
)
# Longest one check may take (the network probes have their own, shorter limits).
CHECK_TIMEOUT_SECONDS = 30.0


async def _guarded(check: Check, ctx: Context) -> list[Finding]:
    name = f"{check.__module__.rsplit('.', 1)[-1]}.{check.__name__}"
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            return await check(ctx)
    except TimeoutError:
        reason = f"it did not finish within {CHECK_TIMEOUT_SECONDS:g} s"
    except Exception as exc:  # one broken check must not hide the others' findings
        reason = f"{type(exc).__name__}: {exc}"
    return [
        Finding(
            Severity.medium,
            f"doctor.{name}",
            f"the check {name} could not run: {reason}",
            "Run `memex doctor` again; if it persists, report it with this message.",
        )
    ]


async def run(ctx: Context, *, checks: Sequence[Check] | None = None) -> Report:
    """Every check (or the given ones), worst findings first, with the manual checklist."""
    started = time.perf_counter()
    chosen = list(checks) if checks is not None else [*CHECKS, *DATABASE_CHECKS]
    findings: list[Finding] = []
    if ctx.engine is None:
        chosen = [c for c in chosen if c not in DATABASE_CHECKS]
        findings.append(
            Finding(
                Severity.critical,
                "database.reachable",
                f"the database does not answer: {ctx.database_error or 'unknown error'}",
                "Check MEMEX_DATABASE_URL and that PostgreSQL is running and reachable from this machine "
                "(for the embedded one, that MEMEX_DATA_DIR is writable).",
            )
        )
    results = await asyncio.gather(*(_guarded(check, ctx) for check in chosen))
    findings += [finding for found in results for finding in found]
    findings.sort(key=lambda f: (f.severity.rank, f.check))
    return Report(findings=findings, manual=list(MANUAL), duration_ms=(time.perf_counter() - started) * 1000)
