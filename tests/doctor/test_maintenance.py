"""`memex db maintain`: heavy churn bloats the HNSW index and maintenance rebuilds it; a fresh store is only analyzed."""

from __future__ import annotations

import sqlalchemy as sa

from memex.doctor import database
from memex.doctor.models import Severity
from memex.documents import store as documents
from memex.jobs import maintenance as maintenance_jobs
from memex.jobs.app import build_app, run_worker
from memex.maintenance import service
from memex.runtime import Runtime
from tests.doctor.conftest import MakeContext, add_document, only

CHURN_ROWS = 2000
KEPT_ROWS = 100


async def _churn(runtime: Runtime) -> None:
    """Insert many chunks with random vectors into the HNSW index, then delete most of them."""
    await add_document(runtime, name="churn.md")
    async with runtime.engine.begin() as conn:
        doc = (await conn.execute(sa.text("SELECT id, kb_id FROM documents WHERE source_path = 'churn.md'"))).one()
        await documents.lock_chunk_stats(conn, kb_ids=[doc.kb_id])
        await conn.execute(
            sa.text(
                "INSERT INTO chunks (document_id, kb_id, ordinal, text, token_count, embedding) "
                "SELECT :doc, :kb, g, 'churn ' || g, 2, "
                "(SELECT array_agg(random()::real) FROM generate_series(1, 384) WHERE g > 0)::vector "
                "FROM generate_series(1, :n) g"
            ),
            {"doc": doc.id, "kb": doc.kb_id, "n": CHURN_ROWS},
        )
    async with runtime.engine.begin() as conn:
        await documents.lock_chunk_stats(conn, kb_ids=[doc.kb_id])
        await conn.execute(sa.text("DELETE FROM chunks WHERE ordinal > :kept"), {"kept": KEPT_ROWS})


async def test_churn_is_found_by_the_doctor_and_reindexed(runtime: Runtime, make_context: MakeContext) -> None:
    await _churn(runtime)
    report = await service.maintain(runtime.engine)
    assert "chunks" in report.analyzed and "documents" in report.analyzed
    (action,) = [a for a in report.indexes if a.index.name == "chunks_embedding_hnsw"]
    assert action.reindexed and report.reindexed == ["chunks_embedding_hnsw"]
    assert action.index.live_rows == KEPT_ROWS and action.index.ratio > 10
    assert "over the 2x threshold" in action.reason
    assert action.bytes_after is not None and action.bytes_after < action.index.bytes / 10
    # The estimate of a fresh build is what a fresh build takes.
    expected = service.expected_bytes(rows=KEPT_ROWS, dimension=384)
    assert abs(action.bytes_after - expected) <= 0.1 * expected
    async with runtime.engine.connect() as conn:
        hits = await conn.execute(sa.text("SELECT count(*) FROM chunks"))
        assert hits.scalar_one() == KEPT_ROWS
    # Afterwards the doctor finds nothing to rebuild, and a second run leaves the index alone.
    assert only(await database.hnsw_bloat(make_context()), "database.hnsw_bloat").severity is Severity.info
    again = await service.maintain(runtime.engine)
    assert again.reindexed == []


async def test_doctor_reports_the_bloat_before_maintenance(runtime: Runtime, make_context: MakeContext) -> None:
    await _churn(runtime)
    async with runtime.engine.connect() as raw:
        conn = await raw.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(sa.text("ANALYZE chunks"))
    finding = only(await database.hnsw_bloat(make_context()), "database.hnsw_bloat")
    assert finding.severity is Severity.medium and "memex db maintain" in finding.fix


async def test_a_fresh_store_is_only_analyzed(runtime: Runtime) -> None:
    report = await service.maintain(runtime.engine)
    assert "chunks" in report.analyzed and "procrastinate_jobs" in report.analyzed
    assert report.reindexed == [] and report.indexes
    assert all(not a.reindexed for a in report.indexes)
    assert "under the 2x threshold" in report.indexes[0].reason


def test_expected_size_follows_pgvector_layout() -> None:
    # Measured on pgvector 0.6: 2000 vectors of 384 dims take 501 pages, of 1536 dims 2001 pages.
    assert service.expected_bytes(rows=2000, dimension=384) == 501 * 8192
    assert service.expected_bytes(rows=2000, dimension=1536) == 2001 * 8192


async def test_the_worker_runs_maintenance_on_its_schedule(runtime: Runtime) -> None:
    app = build_app(runtime)
    periodic = [p for p in app.periodic_registry.periodic_tasks.values() if p.task.name.endswith("maintain_database")]
    assert [p.cron for p in periodic] == [runtime.settings.maintenance_schedule]
    async with app.open_async():
        await app.tasks["memex:maintain_database"].defer_async()
        await run_worker(app, concurrency=1, wait=False)
    async with runtime.engine.connect() as conn:
        found = await conn.execute(
            sa.text("SELECT status::text FROM procrastinate_jobs WHERE task_name = 'memex:maintain_database'")
        )
        assert found.scalars().all() == ["succeeded"]
    assert maintenance_jobs.MAINTENANCE_QUEUE == "maintenance"


async def test_no_schedule_no_periodic_task(runtime: Runtime) -> None:
    quiet = runtime.settings.model_copy(update={"maintenance_schedule": ""})
    blueprint = maintenance_jobs.blueprint(Runtime(settings=quiet, engine=runtime.engine, database_url=""))
    assert not blueprint.periodic_registry.periodic_tasks
