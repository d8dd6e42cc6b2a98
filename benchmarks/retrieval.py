"""Retrieval quality on a BEIR dataset: nDCG@10 and recall@100 of Memex search, per mode.

    python benchmarks/retrieval.py --dataset /work/shared/datasets/beir/scifact [--mode hybrid|vector|keyword|all]

The corpus goes through the real ingestion pipeline (parse → chunk → embed → store), one small text file
per document ("title\\n\\ntext", named <_id>.txt); each test query then goes through search.service.search.
Chunks are mapped back to corpus ids by document path; a document's first (best) chunk gives its rank.
Scores are taken with the relevance cut-off (MEMEX_SEARCH_MIN_SIMILARITY) and, as `*_without_cutoff`, without it.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import hashlib
import json
import math
import statistics
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path
from urllib.parse import quote

import sqlalchemy as sa
from harness import INDEX_CODE, bench_runtime, code_stamp, emit, log, read_corpus, scratch_database
from sqlalchemy.ext.asyncio import AsyncConnection

from memex.ingest import pipeline
from memex.kbs import store as kbs
from memex.kbs.access import Actor
from memex.runtime import Runtime
from memex.search import service
from memex.search.models import MODES, SearchFilters, SearchRequest

SEARCH_LIMIT = 100
PATH_PREFIX = "/beir"


def read_queries(dataset: Path) -> dict[str, str]:
    with open(dataset / "queries.jsonl", encoding="utf-8") as f:
        return {str(row["_id"]): row["text"] for row in map(json.loads, filter(str.strip, f))}


def read_qrels(dataset: Path, split: str) -> dict[str, dict[str, int]]:
    """query id → {corpus id: graded relevance}, in file order."""
    qrels: dict[str, dict[str, int]] = defaultdict(dict)
    with open(dataset / "qrels" / f"{split}.tsv", encoding="utf-8") as f:
        reader = csv.reader(f, delimiter="\t")
        header = next(reader)
        if header[0] != "query-id":  # tolerate qrels without a header
            qrels[header[0]][header[1]] = int(header[2])
        for row in reader:
            if row:
                qrels[row[0]][row[1]] = int(row[2])
    return dict(qrels)


def ndcg_at(ranked: list[str], relevance: dict[str, int], k: int = 10) -> float:
    """nDCG@k as trec_eval's ndcg_cut (linear gain, log2(rank + 1) discount), which BEIR reports."""
    dcg = sum(relevance.get(doc, 0) / math.log2(i + 2) for i, doc in enumerate(ranked[:k]))
    ideal = sorted((r for r in relevance.values() if r > 0), reverse=True)[:k]
    idcg = sum(r / math.log2(i + 2) for i, r in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at(ranked: list[str], relevance: dict[str, int], k: int = 100) -> float:
    relevant = {doc for doc, r in relevance.items() if r > 0}
    return len(relevant & set(ranked[:k])) / len(relevant) if relevant else 0.0


def source_path(dataset_name: str, doc_id: str, doc_format: str) -> str:
    return f"{PATH_PREFIX}/{dataset_name}/{quote(doc_id, safe='')}.{doc_format}"


def select_docs(
    corpus: list[dict[str, str]], qrels: dict[str, dict[str, int]], max_docs: int | None
) -> list[dict[str, str]]:
    """The whole corpus, or a subset of `max_docs` that keeps every judged document of the queries evaluated."""
    if max_docs is None or max_docs >= len(corpus):
        return corpus
    judged = {doc for rel in qrels.values() for doc in rel}
    chosen = [row for row in corpus if row["_id"] in judged][:max_docs]
    chosen_ids = {row["_id"] for row in chosen}
    chosen += [row for row in corpus if row["_id"] not in chosen_ids][: max_docs - len(chosen)]
    return chosen


def signature(args: argparse.Namespace, runtime: Runtime, docs: list[dict[str, str]]) -> str:
    """What the indexed KB depends on; a cached KB is reused only when this matches."""
    h = hashlib.sha256()
    for row in docs:
        h.update(row["_id"].encode() + b"\0" + row["title"].encode() + b"\0" + row["text"].encode() + b"\1")
    extra = f"{h.hexdigest()}|{args.doc_format}"
    return code_stamp(*INDEX_CODE, "benchmarks/retrieval.py", settings=runtime.settings, extra=extra)


def document_bytes(row: dict[str, str], doc_format: str) -> bytes:
    title, text = row["title"].strip(), row["text"].strip()
    if doc_format == "md":
        return (f"# {title}\n\n{text}\n" if title else f"{text}\n").encode()
    return (f"{title}\n\n{text}\n" if title else f"{text}\n").encode()


async def index_corpus(
    runtime: Runtime, *, kb_name: str, dataset_name: str, docs: list[dict[str, str]], doc_format: str
) -> tuple[uuid.UUID, float]:
    async with runtime.engine.begin() as conn:
        # Benchmark KBs of earlier runs (another subset or chunk size) would only slow searches down.
        await conn.execute(sa.text("DELETE FROM knowledge_bases WHERE name LIKE 'bench:%'"))
        await conn.execute(sa.text("DELETE FROM memex_meta WHERE key LIKE 'bench:retrieval:%'"))
        kb = await kbs.create(conn, name=kb_name, owner_id=None)
    items = []
    for row in docs:
        data = document_bytes(row, doc_format)
        items.append(
            pipeline.WorkItem(
                source_path=source_path(dataset_name, row["_id"], doc_format),
                name=f"{row['_id']}.{doc_format}",
                load=lambda data=data: (data, hashlib.sha256(data).hexdigest()),
            )
        )
    embedder = await runtime.load_embedder()
    await asyncio.to_thread(embedder.embed_documents, ["warm-up"])
    outcomes = pipeline.Outcomes()
    started = time.perf_counter()
    done = 0

    def progress(outcome: str, path: str) -> None:
        nonlocal done
        done += 1
        if done % 250 == 0 or done == len(items):
            elapsed = time.perf_counter() - started
            log(f"indexed {done}/{len(items)} documents, {outcomes.chunks} chunks, {done / elapsed:.1f} docs/s")

    await pipeline.run(runtime, kb_id=kb.id, items=items, outcomes=outcomes, on_progress=progress)
    seconds = time.perf_counter() - started
    if outcomes.failures:
        log(f"{len(outcomes.failures)} documents failed, e.g. {outcomes.failures[:3]}")
    return kb.id, seconds


async def cached_index(runtime: Runtime, key: str) -> tuple[uuid.UUID, float] | None:
    """A KB indexed by an earlier run with the same signature (--keep-db), if it is complete."""
    async with runtime.engine.connect() as conn:
        row = (await conn.execute(sa.text("SELECT value FROM memex_meta WHERE key = :k"), {"k": key})).first()
        if row is None:
            return None
        kb_id = uuid.UUID(row.value["kb_id"])
        count = await _indexed_count(conn, kb_id)
    if count != row.value["docs"]:
        return None
    return kb_id, float(row.value["index_seconds"])


async def _indexed_count(conn: AsyncConnection, kb_id: uuid.UUID) -> int:
    query = sa.text("SELECT count(*) FROM documents WHERE kb_id = :kb AND status = 'indexed'")
    return int((await conn.execute(query, {"kb": kb_id})).scalar_one())


async def remember_index(runtime: Runtime, key: str, *, kb_id: uuid.UUID, seconds: float) -> None:
    async with runtime.engine.begin() as conn:
        docs = await _indexed_count(conn, kb_id)
        value = json.dumps({"kb_id": str(kb_id), "docs": docs, "index_seconds": seconds})
        await conn.execute(
            sa.text("INSERT INTO memex_meta (key, value) VALUES (:k, CAST(:v AS jsonb))"), {"k": key, "v": value}
        )


def _parity(qid: str) -> int:
    """A query's half: its id's parity when numeric (SciFact's are), else a stable hash's."""
    return int(qid) % 2 if qid.isdigit() else int(hashlib.sha256(qid.encode()).hexdigest(), 16) % 2


async def evaluate(
    runtime: Runtime,
    *,
    mode: str,
    kb_id: uuid.UUID,
    queries: dict[str, str],
    qrels: dict[str, dict[str, int]],
    by_path: dict[str, str],
    cutoff: bool = True,
) -> dict[str, float]:
    ndcgs, recalls, latencies = [], [], []
    actor = Actor.system()
    for n, (qid, text) in enumerate(queries.items(), start=1):
        request = SearchRequest(
            query=text,
            limit=SEARCH_LIMIT,
            mode=mode,
            filters=SearchFilters(kb_ids=(kb_id,)),
            cutoff=cutoff,
        )
        started = time.perf_counter()
        results = await service.search(runtime, actor, request)
        latencies.append(time.perf_counter() - started)
        ranked: list[str] = []
        seen: set[str] = set()
        for r in results:
            doc = by_path.get(r.path)
            # BEIR drops a document that is the query itself (ignore_identical_ids).
            if doc is None or doc in seen or doc == qid:
                continue
            seen.add(doc)
            ranked.append(doc)
        ndcgs.append(ndcg_at(ranked, qrels[qid], 10))
        recalls.append(recall_at(ranked, qrels[qid], 100))
        if n % 100 == 0:
            log(f"{mode}: {n}/{len(queries)} queries, running nDCG@10 {statistics.mean(ndcgs):.4f}")
    result = {"ndcg@10": round(statistics.mean(ndcgs), 4), "recall@100": round(statistics.mean(recalls), 4)}
    # Tuning looks at one half of the queries only (odd ids); a gain that the other half does not share is noise.
    for half, parity in (("odd", 1), ("even", 0)):
        scores = [score for qid, score in zip(queries, ndcgs, strict=True) if _parity(qid) == parity]
        if scores:
            result[f"ndcg@10_{half}"] = round(statistics.mean(scores), 4)
    log(f"{mode}: {result} (median query {statistics.median(latencies) * 1000:.1f} ms)")
    return result


async def main(args: argparse.Namespace) -> dict[str, object]:
    dataset = args.dataset.absolute()
    name = dataset.name
    corpus = read_corpus(dataset / "corpus.jsonl")
    all_queries = read_queries(dataset)
    qrels = read_qrels(dataset, args.split)
    qids = [q for q in qrels if q in all_queries][: args.limit_queries]
    qrels = {q: qrels[q] for q in qids}
    docs = select_docs(corpus, qrels, args.max_docs)
    doc_ids = {row["_id"] for row in docs}
    log(f"{name}: {len(docs)} of {len(corpus)} documents, {len(qids)} test queries")
    modes = list(MODES) if args.mode == "all" else [args.mode]

    with scratch_database(keep=args.keep_db) as scratch:
        runtime = await bench_runtime(scratch)
        try:
            sig = signature(args, runtime, docs)
            key = f"bench:retrieval:{sig}"
            cached = None if args.reindex else await cached_index(runtime, key)
            if cached is not None:
                kb_id, index_seconds = cached
                log(f"reusing the KB indexed by an earlier run (indexing took {index_seconds:.1f} s)")
            else:
                log(f"indexing {len(docs)} documents through the ingestion pipeline")
                kb_id, index_seconds = await index_corpus(
                    runtime, kb_name=f"bench:{name}:{sig}", dataset_name=name, docs=docs, doc_format=args.doc_format
                )
                log(f"indexed in {index_seconds:.1f} s")
                if args.keep_db is not None:
                    await remember_index(runtime, key, kb_id=kb_id, seconds=index_seconds)
            by_path = {source_path(name, d, args.doc_format): d for d in doc_ids}
            scores = {}
            judged = {"kb_id": kb_id, "queries": {q: all_queries[q] for q in qids}, "qrels": qrels, "by_path": by_path}
            for mode in modes:
                # As people get them (the relevance cut-off applied), and without the cut-off, side by side.
                scores[mode] = await evaluate(runtime, mode=mode, **judged)
                uncut = await evaluate(runtime, mode=mode, cutoff=False, **judged)
                scores[mode] |= {f"{name}_without_cutoff": value for name, value in uncut.items()}
        finally:
            await runtime.close()

    common = {
        "dataset": name,
        "docs": len(docs),
        "queries": len(qids),
        "index_seconds": round(index_seconds, 1),
        "reused_index": cached is not None,
    }
    if args.mode == "all":
        return common | {"modes": scores}
    mode = modes[0]
    return {
        "dataset": name,
        "mode": mode,
        **scores[mode],
        **{k: common[k] for k in ("docs", "queries", "index_seconds", "reused_index")},
    }


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--dataset", type=Path, required=True, help="BEIR folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv"
    )
    p.add_argument(
        "--mode", choices=[*MODES, "all"], default="hybrid", help="search mode; 'all' indexes once and scores each"
    )
    p.add_argument("--split", default="test", help="qrels file to evaluate (default: test)")
    p.add_argument("--limit-queries", type=int, default=None, help="evaluate only the first N judged queries")
    p.add_argument("--max-docs", type=int, default=None, help="index a subset of N documents (judged ones first)")
    p.add_argument(
        "--keep-db",
        type=Path,
        default=None,
        help="keep the embedded database in this (short) folder and reuse its index on later runs with the same "
        "corpus and chunk settings; with MEMEX_DATABASE_URL, use that database as it is",
    )
    p.add_argument("--reindex", action="store_true", help="with --keep-db: index again even if a matching index exists")
    p.add_argument(
        "--doc-format",
        choices=["txt", "md"],
        default="txt",
        help="write each document as text (default) or Markdown with an H1",
    )
    return p.parse_args(argv)


if __name__ == "__main__":
    emit(asyncio.run(main(parse_args(sys.argv[1:]))))
