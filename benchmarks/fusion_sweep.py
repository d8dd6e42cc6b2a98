"""Sweep the hybrid ranking's constants over a kept SciFact index: nDCG@10 on odd ids, even ids and all.

    python benchmarks/fusion_sweep.py --dataset PATH/scifact --keep-db DIR [--grid NAME=V1,V2 …]

The index must exist (run `retrieval.py --keep-db DIR` first, same settings). Each point of the grid sets the
constants of `memex.search.store` named by the grid (e.g. `KEYWORD_WEIGHT=0.8,1,1.2 CONTEXT_WEIGHT=1,2`) and
evaluates hybrid search with the relevance cut-off, as people get it. Tune on `odd`; `even` says whether it holds.
Prints one JSON object on the last line: the points, best first by the odd half.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
from pathlib import Path

import sqlalchemy as sa
from harness import bench_runtime, emit, log, read_corpus, scratch_database
from retrieval import evaluate, read_qrels, read_queries, select_docs, source_path

from memex.search import store


def parse_grid(items: list[str]) -> dict[str, list[float]]:
    grid: dict[str, list[float]] = {}
    for item in items:
        name, _, values = item.partition("=")
        if not hasattr(store, name):
            raise SystemExit(f"memex.search.store has no constant {name}")
        grid[name] = [float(v) for v in values.split(",")]
    return grid


async def main(args: argparse.Namespace) -> dict[str, object]:
    dataset = args.dataset.absolute()
    corpus = read_corpus(dataset / "corpus.jsonl")
    queries = read_queries(dataset)
    qrels = read_qrels(dataset, "test")
    qids = [q for q in qrels if q in queries]
    qrels = {q: qrels[q] for q in qids}
    docs = select_docs(corpus, qrels, None)
    grid = parse_grid(args.grid)
    points = []
    with scratch_database(keep=args.keep_db) as scratch:
        runtime = await bench_runtime(scratch)
        try:
            # The kept index is used as it is (retrieval.py leaves one benchmark KB): only search code changes here.
            async with runtime.engine.connect() as conn:
                kb_id = (
                    await conn.execute(sa.text("SELECT id FROM knowledge_bases WHERE name LIKE 'bench:%' LIMIT 1"))
                ).scalar()
            if kb_id is None:
                raise SystemExit("no kept index: run retrieval.py with --keep-db first")
            by_path = {source_path(dataset.name, row["_id"], "txt"): row["_id"] for row in docs}
            names = list(grid)
            for values in itertools.product(*(grid[n] for n in names)):
                point = dict(zip(names, values, strict=True))
                for name, value in point.items():
                    setattr(store, name, int(value) if name in ("RRF_K", "MATCH_TERMS", "RERANK_DEPTH") else value)
                scores = await evaluate(
                    runtime,
                    mode=args.mode,
                    kb_id=kb_id,
                    queries={q: queries[q] for q in qids},
                    qrels=qrels,
                    by_path=by_path,
                )
                log(f"{point}: {scores}")
                points.append(point | scores)
        finally:
            await runtime.close()
    points.sort(key=lambda p: -float(p["ndcg@10_odd"]))
    return {"dataset": dataset.name, "mode": args.mode, "points": points}


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", type=Path, required=True)
    p.add_argument("--keep-db", type=Path, required=True)
    p.add_argument("--mode", default="hybrid")
    p.add_argument("--grid", nargs="*", default=[])
    emit(asyncio.run(main(p.parse_args(sys.argv[1:]))))
