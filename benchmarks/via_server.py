"""Chunks/s of uploads indexed by the server's in-process worker (`python benchmarks/ingest.py --via server`).

The documents are uploaded through the HTTP API (the real app over an in-process transport, with an API key),
twenty files a request, with the worker stopped; then the worker starts as `memex serve` runs it (in the
server's event loop, `IN_PROCESS_CONCURRENCY` jobs at a time) and the run is timed from its start to the last
document indexed (the parsing sandbox started beforehand, as a running server has it). The raw embedding rate
of the same chunk texts is measured before and after, in the same run, with the same model (the local ONNX model unless MEMEX_EMBEDDING_* say otherwise).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import httpx
import sqlalchemy as sa
from harness import Scratch, bench_runtime, log
from sample_files import documents, to_md

from memex.accounts import keys
from memex.accounts import service as accounts
from memex.api.app import create_app
from memex.cli.main import quiet_logging
from memex.cli.serve import IN_PROCESS_CONCURRENCY
from memex.embeddings.base import Embedder
from memex.ingest import pipeline
from memex.ingest.folders import chunker_for
from memex.ingest.prepare import prepare
from memex.jobs.app import build_app, run_worker
from memex.kbs import service as kbs
from memex.runtime import Runtime

FILES_PER_REQUEST = 20


def raw_embed_seconds(embedder: Embedder, texts: list[str]) -> float:
    """Embed the texts in the pipeline's batch size, with nothing else going on."""
    started = time.perf_counter()
    for i in range(0, len(texts), pipeline.EMBED_BATCH_CHUNKS):
        embedder.embed_documents(texts[i : i + pipeline.EMBED_BATCH_CHUNKS])
    return time.perf_counter() - started


async def _stored_texts(runtime: Runtime, kb_id: uuid.UUID) -> list[str]:
    async with runtime.engine.connect() as conn:
        rows = await conn.execute(
            sa.text("SELECT c.context, c.text FROM chunks c WHERE c.kb_id = :kb ORDER BY c.id"), {"kb": kb_id}
        )
        return [f"{r.context}\n{r.text}" if r.context else r.text for r in rows]


async def _counts(runtime: Runtime, kb_id: uuid.UUID) -> tuple[int, int, int]:
    """(documents still waiting, failed, chunks stored) in the KB."""
    async with runtime.engine.connect() as conn:
        row = (
            await conn.execute(
                sa.text(
                    "SELECT count(*) FILTER (WHERE status IN ('queued', 'indexing')) AS waiting, "
                    "count(*) FILTER (WHERE status = 'failed') AS failed, coalesce(sum(chunk_count), 0) AS chunks "
                    "FROM documents WHERE kb_id = :kb"
                ),
                {"kb": kb_id},
            )
        ).one()
    return int(row.waiting), int(row.failed), int(row.chunks)


async def run(scratch: Scratch, *, corpus: Path, docs: int) -> dict[str, object]:
    files = [(f"doc{n:04d}.md", to_md(doc)) for n, (_, doc) in enumerate(documents(corpus, docs, 0))]
    runtime = await bench_runtime(scratch)
    quiet_logging(runtime.settings)
    try:
        embedder = await runtime.load_embedder()
        await asyncio.to_thread(embedder.embed_documents, ["warm-up"] * 8)
        chunker = chunker_for(runtime)
        expected = [c.embed_text for name, data in files for c in prepare(data, name, chunker).chunks]
        seconds = await asyncio.to_thread(raw_embed_seconds, embedder, expected)
        rates = [len(expected) / seconds]
        log(f"{len(expected)} chunks; raw embedding (before): {seconds:.1f} s, {rates[0]:.1f} chunks/s")
        async with runtime.engine.begin() as conn:
            user = await accounts.add_user(conn, email="bench@example.com", password_hash="x", is_admin=False)
            actor = accounts.actor_for(user)
            kb = await kbs.create_kb(conn, actor, name="bench-via-server")
            key = await keys.create_key(conn, actor, name="bench", scopes=("read", "write"))
        app = create_app(runtime.settings, runtime=runtime)
        headers = {"Authorization": f"Bearer {key.secret}"}
        started = time.perf_counter()
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://memex.bench", headers=headers, timeout=120
        ) as client:
            for i in range(0, len(files), FILES_PER_REQUEST):
                batch = [("files", (name, data)) for name, data in files[i : i + FILES_PER_REQUEST]]
                response = await client.post(f"/api/kbs/{kb.id}/documents", files=batch)
                response.raise_for_status()
        upload_seconds = time.perf_counter() - started
        log(f"uploaded {len(files)} documents in {upload_seconds:.1f} s; the worker starts")

        # The parsing sandbox's children start on first use (about 0.5 s each): a server has them from its first
        # upload on, so they are started before the clock, as the model is.
        await asyncio.gather(*(runtime.parse_pool.prepare(b"# warm-up\n\ntext", "warm-up.md") for _ in range(2)))
        jobs_app = build_app(runtime)
        async with jobs_app.open_async():
            started = time.perf_counter()
            worker = asyncio.create_task(run_worker(jobs_app, concurrency=IN_PROCESS_CONCURRENCY))
            try:
                while (await _counts(runtime, kb.id))[0] and not worker.done():
                    await asyncio.sleep(0.1)
                ingest_seconds = time.perf_counter() - started
            finally:
                worker.cancel()
                await asyncio.gather(worker, return_exceptions=True)
        _, failed, chunks = await _counts(runtime, kb.id)
        log(
            f"indexed {chunks} chunks in {ingest_seconds:.1f} s ({chunks / ingest_seconds:.1f} chunks/s); failed: {failed}"
        )

        texts = await _stored_texts(runtime, kb.id)
        seconds = await asyncio.to_thread(raw_embed_seconds, embedder, texts)
        rates.append(len(texts) / seconds)
        log(f"raw embedding (after): {seconds:.1f} s, {rates[-1]:.1f} chunks/s")
    finally:
        await runtime.close()
    raw_rate = sum(rates) / len(rates)
    end_to_end = chunks / ingest_seconds
    return {
        "via": "server",
        "docs": docs,
        "chunks": chunks,
        "failed": failed,
        "upload_seconds": round(upload_seconds, 2),
        "ingest_seconds": round(ingest_seconds, 2),
        "end_to_end_chunks_per_s": round(end_to_end, 2),
        "raw_embed_chunks_per_s": round(raw_rate, 2),
        "raw_embed_runs_chunks_per_s": [round(r, 2) for r in rates],
        "ratio": round(end_to_end / raw_rate, 3),
        "worker_concurrency": IN_PROCESS_CONCURRENCY,
    }
