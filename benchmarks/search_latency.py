"""Search latency and HNSW recall on a large synthetic store.

    python benchmarks/search_latency.py --chunks 100000 [--queries 200]

The store is filled quickly with synthetic chunks whose vectors keep the structure of real embeddings: a few
thousand real sentences are embedded with the real model, and each chunk's vector is a noisy mix of two of
them, with text made of those two sentences plus words drawn from the same corpus (so full-text search has
realistic matches). Rows go in with COPY and the HNSW and GIN indexes are built afterwards, as a restore would.

Then real text queries run through search.service.search (query embedding included, no query cache):
hybrid latency p50/p95, and HNSW recall@10 of vector search against exact search, swept over ef_search.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import re
import statistics
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import psycopg
import sqlalchemy as sa
from harness import (
    INDEX_CODE,
    SCIFACT,
    bench_runtime,
    code_stamp,
    emit,
    log,
    percentile,
    read_corpus,
    scratch_database,
)

from memex.db.engine import libpq_url
from memex.embeddings.base import vector_literal
from memex.kbs import store as kbs
from memex.kbs.access import Actor
from memex.runtime import Runtime
from memex.search import service
from memex.search.models import SearchFilters, SearchRequest
from memex.search.service import candidates_for

CHUNKS_PER_DOC = 20
KB_SHARES = (0.50, 0.30, 0.18, 0.02)  # the last, small KB shows what a KB filter does to HNSW
FILLER_WORDS = (70, 110)
REBUILT_INDEXES = ("chunks_embedding_hnsw", "chunks_tsv_gin")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"[A-Za-z][A-Za-z-]+")


def corpus_material(corpus_path: object, n_base: int) -> tuple[list[str], list[str]]:
    """Base sentences (for vectors and text) and a stream of words with their natural frequencies."""
    sentences: list[str] = []
    words: list[str] = []
    for row in read_corpus(corpus_path):  # type: ignore[arg-type]
        words += _WORD.findall(row["text"])
        sentences += [s for s in _SENTENCE.split(row["text"]) if 40 <= len(s) <= 300]
    rng = np.random.default_rng(1)
    picked = rng.choice(len(sentences), size=min(n_base, len(sentences)), replace=False)
    return [sentences[i] for i in picked], words


def synthetic_chunks(
    base: np.ndarray, sentences: list[str], words: list[str], n: int, seed: int
) -> tuple[np.ndarray, list[str]]:
    """n (vector, text) pairs: each a noisy mix of two base sentences, so neighbours cluster as in real data."""
    rng = np.random.default_rng(seed)
    primary = rng.integers(0, len(base), n)
    secondary = rng.integers(0, len(base), n)
    mix = rng.uniform(0.0, 0.5, (n, 1)).astype(np.float32)
    noise = rng.normal(0.0, 0.35 / np.sqrt(base.shape[1]), (n, base.shape[1])).astype(np.float32)
    vectors = base[primary] + mix * base[secondary] + noise
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    word_ids = rng.integers(0, len(words), (n, FILLER_WORDS[1]))
    lengths = rng.integers(*FILLER_WORDS, n)
    texts = []
    for j in range(n):
        filler = [words[w] for w in word_ids[j, : lengths[j]]]
        cut = len(filler) // 2
        texts.append(" ".join([sentences[primary[j]], *filler[:cut], sentences[secondary[j]], *filler[cut:]]))
    return vectors, texts


def load(url: str, *, kb_ids: list[uuid.UUID], vectors: np.ndarray, texts: list[str]) -> dict[str, float]:
    """COPY documents and chunks in, then build the vector and full-text indexes; returns timings."""
    timings: dict[str, float] = {}
    n_docs = -(-len(texts) // CHUNKS_PER_DOC)
    bounds = np.cumsum([int(share * n_docs) for share in KB_SHARES[:-1]])
    doc_kb = [kb_ids[int(np.searchsorted(bounds, d, side="right"))] for d in range(n_docs)]
    doc_ids = [uuid.uuid4() for _ in range(n_docs)]
    with psycopg.connect(libpq_url(url)) as conn:
        defs = dict(
            conn.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'chunks' AND indexname = ANY(%s)",
                (list(REBUILT_INDEXES),),
            ).fetchall()
        )
        for name in defs:
            conn.execute(f'DROP INDEX "{name}"')
        conn.execute(
            "INSERT INTO blobs (sha256, data, size) VALUES ('synthetic', 'synthetic'::bytea, 9) ON CONFLICT DO NOTHING"
        )
        started = time.perf_counter()
        with conn.cursor().copy(
            "COPY documents (id, kb_id, source_path, title, mime, file_type, sha256, size, status, chunk_count) "
            "FROM STDIN"
        ) as copy:
            for d, (doc_id, kb_id) in enumerate(zip(doc_ids, doc_kb, strict=True)):
                copy.write_row(
                    (
                        doc_id,
                        kb_id,
                        f"/synthetic/folder{d % 50}/doc{d}.md",
                        f"Document {d}",
                        "text/markdown",
                        "md",
                        "synthetic",
                        9,
                        "indexed",
                        CHUNKS_PER_DOC,
                    )
                )
        # Integers in millionths format several times faster than floats; pgvector reads "123e-6" with strtof.
        micro = np.rint(vectors * 1e6).astype(np.int64).tolist()
        with conn.cursor().copy(
            "COPY chunks (document_id, kb_id, ordinal, heading, context, location, text, token_count, embedding) "
            "FROM STDIN"
        ) as copy:
            for j, (text, vector) in enumerate(zip(texts, micro, strict=True)):
                d = j // CHUNKS_PER_DOC
                copy.write_row(
                    (
                        doc_ids[d],
                        doc_kb[d],
                        j % CHUNKS_PER_DOC,
                        "",
                        f"Document {d}",
                        "",
                        text,
                        200,
                        "[" + "e-6,".join(map(str, vector)) + "e-6]",
                    )
                )
                if (j + 1) % 20_000 == 0:
                    log(f"copied {j + 1} chunks")
        conn.commit()
        timings["copy_seconds"] = time.perf_counter() - started
        log(f"COPY of {n_docs} documents and {len(texts)} chunks: {timings['copy_seconds']:.1f} s")
        conn.execute("SET maintenance_work_mem = '1GB'")
        for name, definition in defs.items():
            started = time.perf_counter()
            conn.execute(definition)
            conn.commit()
            timings[f"{name}_build_seconds"] = time.perf_counter() - started
            log(f"built {name}: {timings[f'{name}_build_seconds']:.1f} s")
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        # Every table, the small kb_chunk_stats included: a long-running server's autovacuum would have analysed
        # them all, and without statistics the planner misjudges the search query badly.
        conn.execute("VACUUM ANALYZE")
    return timings


async def timed_search(runtime: Runtime, request: SearchRequest) -> tuple[float, list[int]]:
    started = time.perf_counter()
    results = await service.search(runtime, Actor.system(), request)
    return (time.perf_counter() - started) * 1000, [r.chunk_id for r in results]


async def top10(
    runtime: Runtime, queries: list[str], *, exact: bool, filters: SearchFilters
) -> tuple[list[list[int]], list[float]]:
    ids, times = [], []
    for q in queries:
        ms, found = await timed_search(
            runtime, SearchRequest(query=q, limit=10, mode="vector", exact=exact, filters=filters)
        )
        ids.append(found)
        times.append(ms)
    return ids, times


def mean_recall(approximate: list[list[int]], exact: list[list[int]]) -> float:
    return statistics.mean(len(set(a) & set(e)) / len(e) if e else 1.0 for a, e in zip(approximate, exact, strict=True))


async def hybrid_latencies(runtime: Runtime, queries: list[str]) -> list[float]:
    return [(await timed_search(runtime, SearchRequest(query=q, limit=10, mode="hybrid")))[0] for q in queries]


async def floor_ms(runtime: Runtime, query: str, *, ef_search: int, k: int) -> float:
    """What a hybrid search cannot go below: the query embedding, then a plain pgvector HNSW top-k on the same
    table at the same ef_search and k, in one transaction through the same pool."""
    started = time.perf_counter()
    vector = vector_literal(await asyncio.to_thread(runtime.embedder.embed_query, query))
    async with runtime.engine.begin() as conn:
        await conn.execute(sa.text("SELECT set_config('hnsw.ef_search', :ef, true)"), {"ef": str(ef_search)})
        rows = await conn.execute(
            sa.text("SELECT id FROM chunks ORDER BY embedding <=> CAST(:v AS vector) LIMIT :k"), {"v": vector, "k": k}
        )
        assert len(rows.all()) == k
    return (time.perf_counter() - started) * 1000


async def floor_and_hybrid(runtime: Runtime, queries: list[str], *, ef_search: int) -> tuple[list[float], list[float]]:
    """Each query's floor and its hybrid search, one after the other, so both see the same moment's load."""
    k = candidates_for(10)
    floors, hybrids = [], []
    for q in queries:
        floors.append(await floor_ms(runtime, q, ef_search=max(ef_search, k), k=k))
        hybrids.append((await timed_search(runtime, SearchRequest(query=q, limit=10, mode="hybrid")))[0])
    return floors, hybrids


_KEPT = "bench:search_latency"


def store_stamp(runtime: Runtime, *, chunks: int, sentences: list[str]) -> str:
    """What the synthetic store depends on: this loader, the schema and embedding code, the model, the material."""
    material = hashlib.sha256("\0".join(sentences).encode()).hexdigest()
    return code_stamp(
        *INDEX_CODE, "benchmarks/search_latency.py", settings=runtime.settings, extra=f"{chunks}|{material}"
    )


async def fill_store(
    runtime: Runtime, *, chunks: int, sentences: list[str], words: list[str]
) -> tuple[list[uuid.UUID], dict[str, float], bool]:
    """Load the synthetic store, unless a kept database (--keep-db) holds one made by this code and settings.

    Returns the KBs, the load timings (an earlier run's when reused) and whether the store was reused."""
    stamp = store_stamp(runtime, chunks=chunks, sentences=sentences)
    async with runtime.engine.begin() as conn:
        kept = (await conn.execute(sa.text("SELECT value FROM memex_meta WHERE key = :k"), {"k": _KEPT})).first()
        if kept is not None and kept.value.get("stamp") == stamp:
            log(f"reusing the synthetic store loaded by an earlier run (stamp {stamp})")
            return [uuid.UUID(k) for k in kept.value["kb_ids"]], kept.value["load"], True
        if kept is not None:
            log("the kept synthetic store was made by other code or settings: loading it again")
        await conn.execute(sa.text("DELETE FROM knowledge_bases WHERE name LIKE 'synthetic-%'"))
        await conn.execute(sa.text("DELETE FROM memex_meta WHERE key = :k"), {"k": _KEPT})
        kb_ids = [(await kbs.create(conn, name=f"synthetic-{i}", owner_id=None)).id for i in range(len(KB_SHARES))]
    started = time.perf_counter()
    base = await asyncio.to_thread(runtime.embedder.embed_documents, sentences)
    log(f"embedded {len(sentences)} base sentences in {time.perf_counter() - started:.1f} s")
    vectors, texts = synthetic_chunks(base, sentences, words, chunks, seed=2)
    timings = await asyncio.to_thread(load, runtime.database_url, kb_ids=kb_ids, vectors=vectors, texts=texts)
    value = json.dumps({"chunks": chunks, "stamp": stamp, "kb_ids": [str(k) for k in kb_ids], "load": timings})
    async with runtime.engine.begin() as conn:
        await conn.execute(
            sa.text("INSERT INTO memex_meta (key, value) VALUES (:k, CAST(:v AS jsonb))"), {"k": _KEPT, "v": value}
        )
    return kb_ids, timings, False


async def main(args: argparse.Namespace) -> dict[str, object]:
    n_base = min(3000, max(200, args.chunks // 30))
    sentences, words = corpus_material(args.corpus, n_base)
    queries = list(dict.fromkeys(r["text"] for r in read_corpus(args.queries_file)))[: args.queries]
    log(f"{len(sentences)} base sentences, {len(words)} corpus words, {len(queries)} distinct queries")
    with scratch_database(keep=args.keep_db) as scratch:
        # No query cache: every search pays for its query embedding, as a new question does.
        runtime = await bench_runtime(scratch, query_cache_size=0)
        try:
            embedder = await runtime.load_embedder()
            kb_ids, timings, reused = await fill_store(runtime, chunks=args.chunks, sentences=sentences, words=words)

            for q in queries[:10]:  # warm the model, the connection pool and Postgres' caches
                await timed_search(runtime, SearchRequest(query=q, limit=10, mode="hybrid"))
            embed_ms = []
            for q in queries:
                started = time.perf_counter()
                await asyncio.to_thread(embedder.embed_query, q)
                embed_ms.append((time.perf_counter() - started) * 1000)

            default_ef = runtime.settings.hnsw_ef_search
            floors, latencies = await floor_and_hybrid(runtime, queries, ef_search=default_ef)
            log(
                f"hybrid at ef_search={default_ef}: p50 {percentile(latencies, 50):.1f} ms, "
                f"p95 {percentile(latencies, 95):.1f} ms; floor p50 {percentile(floors, 50):.1f} ms"
            )

            everywhere = SearchFilters()
            exact, exact_ms = await top10(runtime, queries, exact=True, filters=everywhere)
            log(f"exact vector search: p50 {percentile(exact_ms, 50):.1f} ms")
            sweep = []
            settings = runtime.settings
            for ef in sorted({*args.ef_sweep, default_ef}):
                runtime.settings = settings.model_copy(update={"hnsw_ef_search": ef})
                approximate, vector_ms = await top10(runtime, queries, exact=False, filters=everywhere)
                hybrid_ms = await hybrid_latencies(runtime, queries)
                entry = {
                    "ef_search": ef,
                    # The search reads at least `candidates` rows from HNSW, so a smaller ef is raised to that.
                    "effective_ef_search": max(ef, candidates_for(10)),
                    "recall@10": round(mean_recall(approximate, exact), 4),
                    "p50_ms": round(percentile(hybrid_ms, 50), 2),
                    "p95_ms": round(percentile(hybrid_ms, 95), 2),
                    "vector_p50_ms": round(percentile(vector_ms, 50), 2),
                }
                log(f"sweep: {entry}")
                sweep.append(entry)

            runtime.settings = settings
            small = SearchFilters(kb_ids=(kb_ids[-1],))
            small_exact, _ = await top10(runtime, queries, exact=True, filters=small)
            small_approx, small_ms = await top10(runtime, queries, exact=False, filters=small)
            filtered = {
                "kb_share": KB_SHARES[-1],
                "recall@10": round(mean_recall(small_approx, small_exact), 4),
                "mean_results": round(statistics.mean(len(r) for r in small_approx), 2),
                "vector_p50_ms": round(percentile(small_ms, 50), 2),
            }
            log(f"vector search in the small KB ({KB_SHARES[-1]:.0%} of chunks): {filtered}")
        finally:
            await runtime.close()

    at_default = next(e for e in sweep if e["ef_search"] == default_ef)
    return {
        "chunks": args.chunks,
        "synthetic": True,
        "queries": len(queries),
        "p50_ms": round(percentile(latencies, 50), 2),
        "p95_ms": round(percentile(latencies, 95), 2),
        "floor_p50_ms": round(percentile(floors, 50), 2),
        "ratio_to_floor": round(percentile(latencies, 50) / percentile(floors, 50), 3),
        "recall@10": at_default["recall@10"],
        "ef_search": default_ef,
        "sweep": sweep,
        "query_embed_p50_ms": round(percentile(embed_ms, 50), 2),
        "exact_vector_p50_ms": round(percentile(exact_ms, 50), 2),
        "small_kb_vector": filtered,
        "load": {k: round(v, 1) for k, v in timings.items()},
        "reused_index": reused,
    }


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--chunks", type=int, default=100_000, help="synthetic chunks to load (default 100000)")
    p.add_argument("--queries", type=int, default=200, help="distinct queries to time (default 200)")
    p.add_argument(
        "--ef-sweep",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[100, 200, 300, 400, 600],
        help="ef_search values, comma-separated",
    )
    p.add_argument(
        "--keep-db",
        type=Path,
        default=None,
        help="keep the embedded database in this (short) folder and reuse its synthetic store on later runs of the "
        "same --chunks (to time search changes without reloading)",
    )
    p.add_argument("--corpus", default=SCIFACT / "corpus.jsonl", help="BEIR corpus.jsonl for sentences and words")
    p.add_argument("--queries-file", default=SCIFACT / "queries.jsonl", help="BEIR queries.jsonl for query texts")
    return p.parse_args(argv)


if __name__ == "__main__":
    emit(asyncio.run(main(parse_args(sys.argv[1:]))))
