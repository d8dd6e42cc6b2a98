"""Ingestion throughput: chunks/s of `index_paths` end to end, against the raw embedding rate of the same chunks.

    python benchmarks/ingest.py [--docs 300]
    python benchmarks/ingest.py --workers 1,2,4 [--docs 200]   (job-queue scaling: see worker_scaling.py)
    python benchmarks/ingest.py --via server [--docs 150]      (uploads indexed by the server's worker: via_server.py)

Embedding is the one step that must take the time; everything else (scan, hash, parse, chunk, store) should
hide behind it, so the ratio end-to-end / raw-embed should be close to 1. Both rates are measured in the same
run on the same chunk texts: raw embedding before and after the indexing run, averaged, because the machine's
speed drifts. A second `index_paths` over the unchanged folder measures the incremental no-op. Files are read in the parsing
sandbox (child processes); what that costs per document is measured side by side with reading them in process.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import sys
import time
from pathlib import Path

import gemm_limit
import sqlalchemy as sa
from harness import SCIFACT, bench_runtime, emit, log, percentile, scratch_database
from sample_files import write_folder

from memex.embeddings.base import Embedder
from memex.embeddings.model_files import tokenizer
from memex.errors import MemexError
from memex.ingest import pipeline
from memex.ingest.folders import chunker_for, index_paths
from memex.ingest.prepare import prepare
from memex.ingest.scan import scan
from memex.kbs import store as kbs
from memex.runtime import Runtime


def chunk_texts(runtime: Runtime, folder: Path) -> list[str]:
    """What the model will be asked to embed, recomputed with the engine's own parser and chunker, in scan order."""
    chunker = chunker_for(runtime)
    texts = []
    for file in scan(folder).files:
        prepared = prepare(file.path.read_bytes(), file.path.name, chunker)
        texts += [c.embed_text for c in prepared.chunks]
    return texts


def sandbox_overhead(runtime: Runtime, folder: Path, *, rounds: int = 3) -> dict[str, float]:
    """Milliseconds per document to read (parse + chunk) the folder's files in process and in the sandbox."""
    chunker = chunker_for(runtime)
    files = [(f.path.read_bytes(), f.path.name) for f in scan(folder).files]
    pool = runtime.parse_pool
    pool.prepare_blocking(*files[0])  # start the child outside the measurement
    in_process = sandboxed = 0.0
    for round_ in range(rounds):
        # Alternate which goes first, so that a drift in the machine's speed falls on both alike.
        order = ("in", "sandbox") if round_ % 2 == 0 else ("sandbox", "in")
        for which in order:
            started = time.perf_counter()
            for data, name in files:
                try:
                    if which == "in":
                        prepare(data, name, chunker)
                    else:
                        pool.prepare_blocking(data, name)
                except MemexError:
                    pass
            seconds = time.perf_counter() - started
            if which == "in":
                in_process += seconds
            else:
                sandboxed += seconds
    per_doc = 1000 / (rounds * len(files))
    return {
        "in_process_ms_per_doc": round(in_process * per_doc, 2),
        "sandbox_ms_per_doc": round(sandboxed * per_doc, 2),
        "overhead_ms_per_doc": round((sandboxed - in_process) * per_doc, 2),
        "ratio": round(sandboxed / in_process, 3),
    }


async def stored_texts(runtime: Runtime, kb_id: object) -> list[str]:
    """The embed texts of the chunks the indexing run stored, read back."""
    async with runtime.engine.connect() as conn:
        rows = await conn.execute(
            sa.text(
                "SELECT c.context, c.text FROM chunks c JOIN documents d ON d.id = c.document_id "
                "WHERE c.kb_id = :kb ORDER BY d.source_path, c.ordinal"
            ),
            {"kb": kb_id},
        )
        return [f"{r.context}\n{r.text}" if r.context else r.text for r in rows]


def hardware_limit(texts: list[str]) -> dict[str, object]:
    """The raw rate's ceiling on this machine: the model's matrix products at the GEMM rate measured now."""
    tokens = [len(e.ids) for e in tokenizer().encode_batch(texts)]
    by_batch = gemm_limit.rates_by_batch()
    gflops = max(by_batch.values())
    return {
        "gemm_gflops": round(gflops, 1),
        "gemm_gflops_by_batch": {b: round(v, 1) for b, v in by_batch.items()},
        "mean_tokens": round(sum(tokens) / len(tokens), 1),
    } | {k: round(v, 2) for k, v in gemm_limit.limit(tokens, gflops).items()}


def query_timings(embedder: Embedder, queries: list[str]) -> dict[str, float]:
    """Query embedding p50/p95 in ms, measured here rather than quoted."""
    times = []
    for q in queries:
        started = time.perf_counter()
        embedder.embed_query(q)
        times.append((time.perf_counter() - started) * 1000)
    return {
        "query_embed_p50_ms": round(percentile(times, 50), 2),
        "query_embed_p95_ms": round(percentile(times, 95), 2),
    }


def query_texts(corpus: Path, count: int = 200) -> list[str]:
    """Real questions: SciFact's claims beside the corpus, or the first sentence of each abstract."""
    claims = corpus.parent / "queries.jsonl"
    source = claims if claims.exists() else corpus
    out = []
    with source.open() as lines:
        for line in lines:
            record = json.loads(line)
            out.append(record["text"].split(". ")[0])
            if len(out) == count:
                break
    return out


def raw_embed_seconds(embedder: Embedder, texts: list[str]) -> float:
    """Embed the texts in the pipeline's batch size, with nothing else going on."""
    started = time.perf_counter()
    for i in range(0, len(texts), pipeline.EMBED_BATCH_CHUNKS):
        embedder.embed_documents(texts[i : i + pipeline.EMBED_BATCH_CHUNKS])
    return time.perf_counter() - started


async def main(args: argparse.Namespace) -> dict[str, object]:
    if args.via == "server":
        import via_server

        with scratch_database() as scratch:
            return await via_server.run(scratch, corpus=args.corpus, docs=args.docs)
    if args.workers:
        import worker_scaling

        with scratch_database() as scratch:
            return await worker_scaling.run(
                scratch, corpus=args.corpus, docs=args.docs, workers=args.workers, concurrency=args.concurrency
            )
    with scratch_database() as scratch:
        folder = scratch.work_dir / "docs"
        made = write_folder(folder, corpus_path=args.corpus, count=args.docs)
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        log(f"wrote {args.docs} documents ({size / 1e6:.1f} MB) to {folder}: {made}")
        runtime = await bench_runtime(scratch)
        try:
            started = time.perf_counter()
            embedder = await runtime.load_embedder()
            load_seconds = time.perf_counter() - started
            await asyncio.to_thread(embedder.embed_documents, ["warm-up"] * 8)

            texts = await asyncio.to_thread(chunk_texts, runtime, folder)
            overhead = await asyncio.to_thread(sandbox_overhead, runtime, folder)
            log(f"reading files, per document: {overhead}")
            log(f"{len(texts)} chunks to embed; raw embedding (before)...")
            cpu = [time.process_time()]
            before = await asyncio.to_thread(raw_embed_seconds, embedder, texts)
            cpu.append(time.process_time())
            log(f"raw embedding: {before:.1f} s, {len(texts) / before:.1f} chunks/s")

            async with runtime.engine.begin() as conn:
                kb = await kbs.create(conn, name="bench-ingest", owner_id=None)
            log("index_paths end to end...")
            started = time.perf_counter()
            cpu.append(time.process_time())
            summary = await index_paths(runtime, kb_id=kb.id, paths=[folder])
            index_seconds = time.perf_counter() - started
            cpu.append(time.process_time())
            log(
                f"indexed {summary.added} files, {summary.chunks} chunks in {index_seconds:.1f} s "
                f"({summary.chunks / index_seconds:.1f} chunks/s); failed: {len(summary.failed)}"
            )
            for failure in summary.failed[:5]:
                log(f"  failed: {failure.path}: {failure.reason}")

            stored = await stored_texts(runtime, kb.id)
            if collections.Counter(stored) != collections.Counter(texts):
                log(f"WARNING: stored chunks differ from the recomputed ones ({len(stored)} vs {len(texts)})")
            log("raw embedding (after)...")
            cpu.append(time.process_time())
            after = await asyncio.to_thread(raw_embed_seconds, embedder, stored)
            cpu.append(time.process_time())
            log(f"raw embedding: {after:.1f} s, {len(stored) / after:.1f} chunks/s")

            log("GEMM rate of the model's own matrix shapes, and query embedding...")
            limit = await asyncio.to_thread(hardware_limit, stored)
            queries = await asyncio.to_thread(query_texts, args.corpus)
            timings = await asyncio.to_thread(query_timings, embedder, queries)
            log(f"hardware limit: {limit}; {timings}")

            started = time.perf_counter()
            again = await index_paths(runtime, kb_id=kb.id, paths=[folder])
            reindex_seconds = time.perf_counter() - started
            log(
                f"re-index of the unchanged folder: {reindex_seconds:.2f} s, {again.unchanged} unchanged, "
                f"{again.added + again.updated} re-indexed"
            )
        finally:
            await runtime.close()

    raw_rate = (len(texts) / before + len(stored) / after) / 2
    end_to_end = summary.chunks / index_seconds
    return {
        "docs": args.docs,
        "chunks": summary.chunks,
        "end_to_end_chunks_per_s": round(end_to_end, 2),
        "raw_embed_chunks_per_s": round(raw_rate, 2),
        "ratio": round(end_to_end / raw_rate, 3),
        # The raw rate against what this machine's matrix products allow for these chunks (goal >= 0.8).
        "raw_share_of_gemm_limit": round(raw_rate / float(limit["limit_chunks_per_s"]), 3),
        "gemm_limit": limit,
        "model_load_seconds": round(load_seconds, 3),
        **timings,
        "index_seconds": round(index_seconds, 2),
        "embed_seconds": round((before + after) / 2, 2),
        "raw_embed_runs_chunks_per_s": [round(len(texts) / before, 2), round(len(stored) / after, 2)],
        "reindex_unchanged_seconds": round(reindex_seconds, 3),
        "failed": len(summary.failed),
        # Reading (parse + chunk) one document in process vs in the parsing sandbox, side by side.
        "sandbox": overhead,
        # The same ratio in this process' CPU time, which other load on the machine barely moves.
        "cpu_ratio": round((cpu[1] - cpu[0] + cpu[5] - cpu[4]) / 2 / (cpu[3] - cpu[2]), 3),
        # This process' CPU time (all threads; Postgres' work is not in it): wall time that CPU time does not
        # explain was spent waiting, for the machine (other load) or inside the pipeline.
        "cpu_seconds": {
            "raw_before": round(cpu[1] - cpu[0], 1),
            "index": round(cpu[3] - cpu[2], 1),
            "raw_after": round(cpu[5] - cpu[4], 1),
        },
    }


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--docs", type=int, default=300, help="documents to generate (default 300)")
    p.add_argument(
        "--corpus", type=Path, default=SCIFACT / "corpus.jsonl", help="BEIR corpus.jsonl the prose comes from"
    )
    p.add_argument(
        "--workers",
        type=lambda v: [int(n) for n in v.split(",")],
        default=None,
        help="measure the job queue with these counts of `memex worker` processes instead, e.g. 1,2,4",
    )
    p.add_argument(
        "--via",
        choices=("index", "server"),
        default="index",
        help="index: `index_paths` on a folder (default); server: uploads through the HTTP API, worker in process",
    )
    p.add_argument("--concurrency", type=int, default=1, help="jobs each worker runs at a time (with --workers)")
    return p.parse_args(argv)


if __name__ == "__main__":
    emit(asyncio.run(main(parse_args(sys.argv[1:]))))
