"""The scheduled database maintenance (MEMEX_MAINTENANCE_SCHEDULE): what `memex db maintain` does, weekly.

Procrastinate defers a periodic job once per tick whatever the number of workers, and the maintenance itself
takes an advisory lock, so a run started by hand meanwhile is skipped rather than doubled.
"""

from __future__ import annotations

import structlog
from procrastinate import Blueprint, JobContext

from memex.errors import Conflict
from memex.maintenance import service
from memex.runtime import Runtime

MAINTENANCE_QUEUE = "maintenance"
log = structlog.get_logger("memex.maintenance")


def blueprint(runtime: Runtime) -> Blueprint:
    """The maintenance task, scheduled unless MEMEX_MAINTENANCE_SCHEDULE is empty."""
    bp = Blueprint()

    @bp.task(name="maintain_database", queue=MAINTENANCE_QUEUE, queueing_lock="maintain_database", pass_context=True)
    async def maintain_database(context: JobContext, timestamp: int | None = None) -> None:
        """ANALYZE Memex's tables; REINDEX CONCURRENTLY a bloated HNSW index."""
        try:
            report = await service.maintain(runtime.engine)
        except Conflict as exc:
            log.info("database maintenance skipped", reason=exc.message)
            return
        log.info(
            "database maintenance done",
            analyzed=len(report.analyzed),
            reindexed=report.reindexed,
            indexes=[action.reason for action in report.indexes],
        )

    if runtime.settings.maintenance_schedule:
        bp.periodic(cron=runtime.settings.maintenance_schedule)(maintain_database)
    return bp
