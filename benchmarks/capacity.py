"""Measure the constants `memex capacity` computes with, on this machine, and store them for it.

    python benchmarks/capacity.py [--documents 300] [--chunks 20000] [--queries 100] [--no-save]

1. Real ingestion (index_paths: parse, chunk, embed, store) of --documents SciFact abstracts as Markdown files:
   chunks per KB of text.
2. The embedding model on those chunks: chunks embedded per CPU-second (all the threads ONNX Runtime uses).
3. The store grown to half of --chunks and then to --chunks with further documents written the way ingestion
   writes them (real chunk text; vectors near real ones): bytes per chunk of the chunks table, the HNSW and GIN
   indexes and the rest, per document, per byte of file, taken as what each further chunk adds.
4. Hybrid searches for SciFact queries through search.service: CPU of this process (query embedding included)
   and of the PostgreSQL backends, per search; and this process's resident memory.

The constants go to MEMEX_DATA_DIR/capacity.json (unless --no-save); the JSON line also holds them.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime
import hashlib
import os
import platform
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import psutil
import psycopg
import sqlalchemy as sa
from harness import SCIFACT, bench_runtime, emit, log, read_corpus, scratch_database

from memex.capacity import constants
from memex.capacity.store import StoreSizes, per_chunk, sizes, use_gin_pending_list
from memex.db.engine import libpq_url
from memex.documents import store as documents
from memex.ingest.folders import chunker_for, index_paths
from memex.ingest.models import ParsedDocument, Section
from memex.kbs import store as kbs
from memex.kbs.access import Actor
from memex.runtime import Runtime
from memex.search import service
from memex.search.models import SearchRequest
from memex.settings import Settings


def markdown(row: dict[str, str], tag: str = "") -> str:
    return f"# {row['title'] or row['_id']}{tag}\n\n{row['text']}\n"


async def settled(runtime: Runtime) -> StoreSizes:
    with psycopg.connect(libpq_url(runtime.database_url), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE chunks, documents, blobs, kb_lexeme_stats, kb_chunk_stats")
    async with runtime.engine.connect() as conn:
        return await sizes(conn)


async def grow(runtime: Runtime, kb_id: uuid.UUID, *, to: int, rows: list[dict[str, str]], base: np.ndarray) -> None:
    """Write further documents as ingestion does (blob, document, chunks in one transaction) until `to` chunks."""
    chunker = chunker_for(runtime)
    rng = np.random.default_rng(5)
    async with runtime.engine.connect() as conn:
        have = (await sizes(conn)).chunks
    n = 0
    while have < to:
        row = rows[n % len(rows)]
        tag = uuid.uuid4().hex
        data = markdown(row, f" ({tag})").encode()
        pieces = chunker.chunk(ParsedDocument(title=row["title"], sections=(Section(text=row["text"]),)))
        vectors = base[rng.integers(0, len(base), len(pieces))] + rng.normal(0, 0.02, (len(pieces), base.shape[1]))
        vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
        sha = hashlib.sha256(data).hexdigest()
        async with runtime.engine.begin() as conn:
            doc_id = await documents.put_document(
                conn,
                kb_id=kb_id,
                source_path=f"grown/{tag}.md",
                title=row["title"],
                mime="text/markdown",
                file_type="md",
                sha256=sha,
                data=data,
                status="queued",
                modified_at=None,
            )
            await documents.replace_chunks(conn, document_id=doc_id, kb_id=kb_id, chunks=pieces, vectors=vectors)
        have += len(pieces)
        n += 1
        if n % 1000 == 0:
            log(f"grown by {n} documents to {have} chunks")


def postgres_cpu(backend_pid: int) -> float:
    """CPU seconds of every process of the server that runs `backend_pid` (its postmaster's children)."""
    postmaster = psutil.Process(backend_pid).parent()
    total = 0.0
    for proc in [postmaster, *postmaster.children()]:
        try:
            t = proc.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


async def main(args: argparse.Namespace) -> dict[str, object]:
    corpus = read_corpus(args.corpus)
    queries = [r["text"] for r in read_corpus(args.queries_file)][: args.queries]
    with scratch_database() as scratch:
        runtime = await bench_runtime(scratch)
        try:
            embedder = await runtime.load_embedder()
            async with runtime.engine.begin() as conn:
                kb_id = (await kbs.create(conn, name="capacity", owner_id=None)).id
                # The full-text index's own growth, without its pending list's pages (the estimate adds those
                # whole): off from the first document, so that no recycled pending pages absorb later growth.
                await use_gin_pending_list(conn, enabled=False)

            folder = scratch.work_dir / "docs"
            folder.mkdir()
            for row in corpus[: args.documents]:
                (folder / f"{row['_id']}.md").write_text(markdown(row))
            text_bytes = sum(p.stat().st_size for p in folder.iterdir())
            summary = await index_paths(runtime, kb_id=kb_id, paths=[folder])
            chunks_per_kb = summary.chunks / (text_bytes / 1024)
            log(f"ingested {summary.added} documents, {text_bytes / 1024:.0f} KB: {summary.chunks} chunks")

            async with runtime.engine.connect() as conn:
                texts = [r.text for r in await conn.execute(sa.text("SELECT text FROM chunks ORDER BY id"))]
            cpu = time.process_time()
            base = await asyncio.to_thread(embedder.embed_documents, texts)
            embed_rate = len(texts) / (time.process_time() - cpu)
            log(f"embedding: {embed_rate:.1f} chunks per CPU-second over {len(texts)} chunks")

            rest = corpus[args.documents :]
            await grow(runtime, kb_id, to=args.chunks // 2, rows=rest, base=np.asarray(base))
            half = await settled(runtime)
            await grow(runtime, kb_id, to=args.chunks, rows=rest[len(rest) // 2 :] + rest, base=np.asarray(base))
            full = await settled(runtime)
            storage = per_chunk(half, full)
            async with runtime.engine.begin() as conn:
                await use_gin_pending_list(conn, enabled=True)
            log(f"storage between {half.chunks} and {full.chunks} chunks: {storage}")

            async with runtime.engine.connect() as conn:
                backend = (await conn.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one()
            for q in queries[:5]:  # warm-up: plans, caches
                await service.search(runtime, Actor.system(), SearchRequest(query=q, limit=10, mode="hybrid"))
            cpu, db_cpu = time.process_time(), postgres_cpu(backend)
            for q in queries:
                await service.search(runtime, Actor.system(), SearchRequest(query=q + " ", limit=10, mode="hybrid"))
            search_cpu = (time.process_time() - cpu) / len(queries) * 1000
            search_db_cpu = (postgres_cpu(backend) - db_cpu) / len(queries) * 1000
            rss_mb = psutil.Process().memory_info().rss / 1024**2
            log(f"search: {search_cpu:.1f} ms CPU here, {search_db_cpu:.1f} ms in PostgreSQL; RSS {rss_mb:.0f} MiB")
        finally:
            await runtime.close()

    measured = dataclasses.replace(
        constants.DEFAULTS,
        measured_on=f"{platform.node()}: {os.cpu_count()} CPUs, {platform.processor() or platform.machine()} "
        f"(benchmarks/capacity.py, {full.chunks:,} chunks)",
        measured_at=datetime.date.today().isoformat(),
        chunk_tokens=runtime.settings.chunk_tokens,
        chunks_per_text_kb=round(chunks_per_kb, 4),
        embed_chunks_per_cpu_second=round(embed_rate, 2),
        search_cpu_ms=round(search_cpu, 2),
        search_db_cpu_ms=round(search_db_cpu, 2),
        process_rss_mb=round(rss_mb),
        **{k: round(v, 4) for k, v in storage.items()},
    )
    saved = None
    if not args.no_save:
        saved = str(constants.save(measured, Settings().data_dir))
        log(f"saved to {saved}")
    return {"constants": measured.as_dict(), "saved": saved, "queries": len(queries)}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=SCIFACT / "corpus.jsonl")
    parser.add_argument("--queries-file", type=Path, default=SCIFACT / "queries.jsonl")
    parser.add_argument("--documents", type=int, default=300, help="documents ingested for real")
    parser.add_argument("--chunks", type=int, default=20_000, help="chunks in the store measured for sizes")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--no-save", action="store_true", help="print the constants without storing them")
    return parser.parse_args(argv)


if __name__ == "__main__":
    emit(asyncio.run(main(parse_args(sys.argv[1:]))))
