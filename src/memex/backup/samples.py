"""Sample searches: a few queries taken from the data, run through Memex's own search code when the backup is
made (inside the dump's snapshot) and again on the restored copy, where they must find the same top results.

The queries are titles of a few documents, as plain text (no operators). Keyword searches need nothing but the
database; hybrid ones need the same embedding model, and are skipped when verifying with another one. Vector
search is exact here, so that an HNSW graph rebuilt by the restore cannot change an answer.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from memex.backup import store
from memex.db.engine import sqlalchemy_url
from memex.embeddings.base import Embedder
from memex.kbs.access import Actor
from memex.metrics import Metrics
from memex.runtime import Runtime
from memex.search import service
from memex.search.models import Mode, SearchRequest
from memex.settings import Settings

QUERIES = 3
_LIMIT = 5
_MAX_QUERY_CHARS = 200
_SAME = 1e-6


@contextlib.asynccontextmanager
async def search_runtime(
    settings: Settings, url: str, *, embedder: Embedder | None, snapshot: str | None = None
) -> AsyncIterator[Runtime]:
    """A runtime for searches on `url`; with `snapshot`, every transaction sees exactly that snapshot."""
    options: dict[str, Any] = {"isolation_level": "REPEATABLE READ"} if snapshot else {}
    engine = create_async_engine(sqlalchemy_url(url), poolclass=NullPool, **options)
    if snapshot is not None:
        pin = store.pin_snapshot_sql(snapshot)

        @sa.event.listens_for(engine.sync_engine, "begin")
        def _pin(conn: sa.Connection) -> None:
            conn.exec_driver_sql(pin)

    runtime = Runtime(settings=settings, engine=engine, database_url=url, metrics=Metrics(enabled=False))
    if embedder is not None:
        runtime.use_embedder(embedder)
    try:
        yield runtime
    finally:
        await engine.dispose()


async def record(runtime: Runtime, titles: list[str], *, hybrid: bool) -> list[dict[str, Any]]:
    """Each title searched in each mode, with the ids of the chunks that share the top score."""
    samples = []
    wanted: tuple[Mode, ...] = ("keyword", "hybrid") if hybrid else ("keyword",)
    for title in titles:
        query = " ".join(title.split())[:_MAX_QUERY_CHARS]
        for mode in wanted:
            top, score = await _top(runtime, query, mode)
            if top:
                samples.append({"query": query, "mode": mode, "top": top, "score": score})
    return samples


async def check(runtime: Runtime, samples: list[dict[str, Any]], *, hybrid: bool) -> tuple[list[str], int]:
    """The differences found (as sentences for a person), and how many samples were skipped."""
    problems, skipped = [], 0
    for sample in samples:
        if sample["mode"] != "keyword" and not hybrid:
            skipped += 1
            continue
        top, score = await _top(runtime, sample["query"], sample["mode"])
        if sorted(top) != sorted(sample["top"]) or abs(score - float(sample["score"])) > _SAME:
            problems.append(
                f"{sample['mode']} search for {sample['query']!r} found chunks {top} (score {score:.6f}); "
                f"the backup found {sample['top']} (score {float(sample['score']):.6f})"
            )
    return problems, skipped


async def _top(runtime: Runtime, query: str, mode: Mode) -> tuple[list[int], float]:
    request = SearchRequest(query=query, limit=_LIMIT, mode=mode, exact=True, operators=False)
    results = await service.search(runtime, Actor.system(), request)
    if not results:
        return [], 0.0
    best = results[0].score
    return sorted(r.chunk_id for r in results if abs(r.score - best) <= _SAME), best
