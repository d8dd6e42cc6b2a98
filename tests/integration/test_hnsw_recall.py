"""HNSW against an exact scan on a store where they can differ: a few thousand clustered vectors.

With ef_search at its floor the graph walk misses true neighbours (which proves the index is the one searched);
with the configured setting and the depth the service asks for, it must find nearly all of them (recall@10 ≥ 0.98).
"""

from __future__ import annotations

import asyncio
import uuid

import numpy as np
import psycopg
import pytest

from memex.db.engine import libpq_url
from memex.embeddings.base import vector_literal
from memex.kbs import store as kbs
from memex.runtime import Runtime
from memex.search import store
from memex.search.service import candidates_for
from memex.settings import Settings

CHUNKS = 3000
DIMENSION = 384
CLUSTERS = 30
QUERIES = 40
LIMIT = 10


def clustered(rng: np.random.Generator, n: int, centres: np.ndarray, spread: float) -> np.ndarray:
    """Unit vectors loosely around random centres: clustered like embeddings, but with neighbours close in
    distance, so that a graph walk can miss some (tight clusters make any walk find them all)."""
    picked = centres[rng.integers(0, len(centres), n)]
    vectors = picked + rng.normal(0.0, spread / np.sqrt(DIMENSION), (n, DIMENSION))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture
async def store_of_vectors(runtime: Runtime, database_url: str) -> tuple[uuid.UUID, np.ndarray]:
    rng = np.random.default_rng(7)
    centres = rng.normal(size=(CLUSTERS, DIMENSION))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    vectors = clustered(rng, CHUNKS, centres, spread=3.0)
    async with runtime.engine.begin() as conn:
        kb_id = (await kbs.create(conn, name="vectors", owner_id=None)).id
    doc_id = uuid.uuid4()
    with psycopg.connect(libpq_url(database_url)) as conn:
        conn.execute("INSERT INTO blobs (sha256, data, size) VALUES ('v', 'v'::bytea, 1)")
        conn.execute(
            "INSERT INTO documents (id, kb_id, source_path, title, mime, file_type, sha256, size, status, chunk_count) "
            "VALUES (%s, %s, 'vectors.md', 'Vectors', 'text/markdown', 'md', 'v', 1, 'indexed', %s)",
            (doc_id, kb_id, CHUNKS),
        )
        with conn.cursor().copy(
            "COPY chunks (document_id, kb_id, ordinal, heading, context, location, text, token_count, embedding) "
            "FROM STDIN"
        ) as copy:
            for j, vector in enumerate(vectors):
                copy.write_row((doc_id, kb_id, j, "", "", "", f"chunk {j}", 2, vector_literal(vector)))
        conn.commit()
        conn.execute("ANALYZE chunks")
        conn.commit()
    return kb_id, clustered(rng, QUERIES, centres, spread=3.0)


async def _top(runtime: Runtime, kb_id: uuid.UUID, queries: np.ndarray, **how: object) -> list[set[int]]:
    found = []
    async with runtime.engine.begin() as conn:
        for query in queries:
            rows = await store.search(
                conn,
                mode="vector",
                filters=store.SqlFilters(kb_ids=[kb_id]),
                query_text="",
                query_vector=asyncio.sleep(0, result=vector_literal(query)),
                limit=LIMIT,
                **how,  # type: ignore[arg-type]
            )
            found.append({int(r.chunk_id) for r in rows.rows})
    return found


def recall(approximate: list[set[int]], exact: list[set[int]]) -> float:
    assert all(len(e) == LIMIT for e in exact)  # a real top 10 each time, never an empty one
    return sum(len(a & e) for a, e in zip(approximate, exact, strict=True)) / (LIMIT * len(exact))


async def test_hnsw_reaches_the_exact_top_10_at_the_configured_ef_search(
    runtime: Runtime, store_of_vectors: tuple[uuid.UUID, np.ndarray]
) -> None:
    kb_id, queries = store_of_vectors
    exact = await _top(runtime, kb_id, queries, candidates=candidates_for(LIMIT), ef_search=10, exact=True)
    floor = await _top(runtime, kb_id, queries, candidates=LIMIT, ef_search=LIMIT)
    configured = await _top(
        runtime, kb_id, queries, candidates=candidates_for(LIMIT), ef_search=Settings().hnsw_ef_search
    )
    # The graph was walked (not the table scanned), and a short walk misses neighbours: about 0.8 here.
    assert recall(floor, exact) < 0.95
    assert recall(configured, exact) >= 0.98
