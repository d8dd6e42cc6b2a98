"""Ingestion jobs: enqueued with the document, run by a real procrastinate worker, ending indexed or failed."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path

import pytest
import sqlalchemy as sa
from procrastinate import RetryStrategy

from memex import jobs
from memex.documents import service
from memex.documents.models import Document
from memex.documents.service import Upload
from memex.embeddings.base import Embedder, Vectors
from memex.errors import Conflict
from memex.jobs.app import build_app, run_worker
from memex.kbs import store as kbs
from memex.kbs.access import Actor
from memex.runtime import Runtime
from tests.conftest import DATA

# Retries without waiting, so that a worker told not to wait still runs them.
NO_WAIT = RetryStrategy(max_attempts=2)


async def drain(runtime: Runtime, *, retry: RetryStrategy = NO_WAIT) -> None:
    """Run a real worker in this event loop until the queue is empty."""
    app = build_app(runtime, retry=retry)
    async with app.open_async():
        await run_worker(app, concurrency=1, wait=False)


async def make_kb(runtime: Runtime, name: str = "team") -> uuid.UUID:
    async with runtime.engine.begin() as conn:
        return (await kbs.create(conn, name=name, owner_id=None)).id


async def put(runtime: Runtime, kb_id: uuid.UUID, *files: tuple[str, bytes]) -> list[Document]:
    async def receive() -> list[Upload]:
        return [Upload(name=name, data=data) for name, data in files]

    return (await service.upload(runtime, Actor.system(), kb_id=kb_id, receive=receive)).documents


async def doc(runtime: Runtime, document_id: uuid.UUID) -> Document:
    async with runtime.engine.begin() as conn:
        return await service.get(conn, Actor.system(), document_id)


async def chunk_texts(runtime: Runtime, document_id: uuid.UUID) -> list[str]:
    async with runtime.engine.connect() as conn:
        rows = await conn.execute(
            sa.text("SELECT text FROM chunks WHERE document_id = :id ORDER BY ordinal"), {"id": document_id}
        )
        return [r.text for r in rows]


async def job_rows(runtime: Runtime) -> list[sa.Row[tuple[str, int, str]]]:
    async with runtime.engine.connect() as conn:
        rows = await conn.execute(
            sa.text(
                "SELECT status::text, attempts, args ->> 'document_id' AS document_id FROM procrastinate_jobs "
                "WHERE task_name = :task ORDER BY id"
            ),
            {"task": jobs.INGEST_TASK},
        )
        return list(rows)


class FailingEmbedder:
    """Raises for the first `failures` batches, then embeds for real: a model that hiccups."""

    def __init__(self, inner: Embedder, *, failures: int) -> None:
        self.inner, self.failures = inner, failures
        self.name, self.dimension = inner.name, inner.dimension

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        if self.failures > 0:
            self.failures -= 1
            raise RuntimeError("model crashed")
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> Vectors:
        return self.inner.embed_query(text)


async def test_upload_queues_jobs_that_index_every_document(runtime: Runtime) -> None:
    kb_id = await make_kb(runtime)
    md, pdf = await put(
        runtime,
        kb_id,
        ("notes/sample.md", (DATA / "sample.md").read_bytes()),
        ("sample.pdf", (DATA / "sample.pdf").read_bytes()),
    )
    assert (md.status, pdf.status) == ("queued", "queued")
    assert md.source_path == "notes/sample.md"
    assert [r.status for r in await job_rows(runtime)] == ["todo", "todo"]

    await drain(runtime)

    for d in (md, pdf):
        done = await doc(runtime, d.id)
        assert done.status == "indexed", done.error
        assert done.chunk_count == len(await chunk_texts(runtime, d.id)) > 0
        assert done.indexed_at is not None
    assert (await doc(runtime, md.id)).title != "sample"  # the parsed title replaced the file name
    assert [r.status for r in await job_rows(runtime)] == ["succeeded", "succeeded"]


async def test_job_is_enqueued_only_if_the_transaction_commits(runtime: Runtime) -> None:
    async with runtime.engine.connect() as conn:
        transaction = await conn.begin()
        await jobs.defer_ingest(conn, document_ids=[uuid.uuid4()])
        await transaction.rollback()
    assert await job_rows(runtime) == []


async def test_unparsable_file_fails_at_once_and_a_retry_is_refused_with_its_reason(runtime: Runtime) -> None:
    kb_id = await make_kb(runtime)
    (bad,) = await put(runtime, kb_id, ("corrupt.pdf", (DATA / "corrupt.pdf").read_bytes()))
    await drain(runtime)
    failed = await doc(runtime, bad.id)
    assert failed.status == "failed"
    assert failed.error and "PDF" in failed.error
    assert failed.retryable is False
    # A parse error is final: the job itself succeeded, in one run, with no retry.
    assert [(r.status, r.attempts) for r in await job_rows(runtime)] == [("succeeded", 1)]

    # The same bytes would fail the same way: the retry says why and queues nothing.
    async with runtime.engine.begin() as conn:
        with pytest.raises(Conflict, match=r"^corrupt\.pdf cannot be indexed as it is \(corrupt PDF: "):
            await service.retry(conn, Actor.system(), bad.id)
    assert (await doc(runtime, bad.id)).status == "failed"
    assert len(await job_rows(runtime)) == 1


async def test_transient_error_is_retried_then_indexed(runtime: Runtime) -> None:
    kb_id = await make_kb(runtime)
    runtime.use_embedder(FailingEmbedder(runtime.embedder, failures=1))
    (d,) = await put(runtime, kb_id, ("sample.md", (DATA / "sample.md").read_bytes()))
    await drain(runtime)
    assert (await doc(runtime, d.id)).status == "indexed"
    assert [(r.status, r.attempts) for r in await job_rows(runtime)] == [("succeeded", 2)]


async def test_persistent_error_fails_with_the_reason_after_the_last_attempt(runtime: Runtime) -> None:
    kb_id = await make_kb(runtime)
    runtime.use_embedder(FailingEmbedder(runtime.embedder, failures=10))
    (d,) = await put(runtime, kb_id, ("sample.md", (DATA / "sample.md").read_bytes()))
    await drain(runtime)
    failed = await doc(runtime, d.id)
    # An internal error is not shown to readers (tests/api/test_failure_reasons.py); the log keeps it.
    assert failed.status == "failed" and failed.error and failed.error.startswith("Memex could not index")
    assert [(r.status, r.attempts) for r in await job_rows(runtime)] == [("failed", 3)]


async def test_reupload_replaces_the_document_after_ingestion(runtime: Runtime) -> None:
    kb_id = await make_kb(runtime)
    (first,) = await put(runtime, kb_id, ("a.md", b"# Alpha\n\nthe first version talks about otters\n"))
    await drain(runtime)
    (second,) = await put(runtime, kb_id, ("a.md", b"# Alpha\n\nthe second version talks about herons\n"))
    assert second.id == first.id
    assert second.status == "queued"
    # Until the new chunks are in, the old ones still answer searches.
    assert any("otters" in t for t in await chunk_texts(runtime, first.id))
    await drain(runtime)
    texts = await chunk_texts(runtime, first.id)
    assert any("herons" in t for t in texts) and not any("otters" in t for t in texts)
    async with runtime.engine.connect() as conn:
        blobs = (await conn.execute(sa.text("SELECT count(*) FROM blobs"))).scalar_one()
    assert blobs == 1  # the first version's bytes went with it

    (same,) = await put(runtime, kb_id, ("a.md", b"# Alpha\n\nthe second version talks about herons\n"))
    assert same.status == "indexed"  # same bytes: nothing to do
    assert len(await job_rows(runtime)) == 2


async def test_lost_job_is_queued_again(runtime: Runtime) -> None:
    kb_id = await make_kb(runtime)
    (d,) = await put(runtime, kb_id, ("sample.md", (DATA / "sample.md").read_bytes()))
    async with runtime.engine.begin() as conn:
        # As if the job had been aborted at shutdown while the document was being indexed.
        await conn.execute(sa.text("DELETE FROM procrastinate_jobs"))
        await conn.execute(sa.text("UPDATE documents SET status = 'indexing', updated_at = now() - interval '1 hour'"))
    assert await service.requeue_lost(runtime, idle_seconds=60) == [d.id]
    assert await service.requeue_lost(runtime, idle_seconds=60) == []
    await drain(runtime)
    assert (await doc(runtime, d.id)).status == "indexed"


async def test_job_for_a_deleted_document_does_nothing(runtime: Runtime) -> None:
    kb_id = await make_kb(runtime)
    (d,) = await put(runtime, kb_id, ("sample.md", (DATA / "sample.md").read_bytes()))
    async with runtime.engine.begin() as conn:
        await service.delete(conn, Actor.system(), d.id)
    await drain(runtime)
    assert [r.status for r in await job_rows(runtime)] == ["succeeded"]


async def test_memex_worker_runs_queued_jobs_and_stops_on_sigterm(
    runtime: Runtime, database_url: str, model_cache_dir: Path, tmp_path: Path
) -> None:
    kb_id = await make_kb(runtime)
    (d,) = await put(runtime, kb_id, ("sample.md", (DATA / "sample.md").read_bytes()))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMEX_")} | {
        "MEMEX_DATABASE_URL": database_url,
        "MEMEX_DATA_DIR": str(tmp_path / "data"),
        "MEMEX_MODEL_CACHE_DIR": str(model_cache_dir),
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "memex", "worker", "--concurrency", "1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        for _ in range(600):
            if (await doc(runtime, d.id)).status == "indexed" or worker.poll() is not None:
                break
            await asyncio.sleep(0.2)
        assert (await doc(runtime, d.id)).status == "indexed"
        worker.send_signal(signal.SIGTERM)
        output, _ = await asyncio.to_thread(worker.communicate, timeout=60)
        assert worker.returncode == 0, output.decode()
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
