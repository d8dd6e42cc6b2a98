"""Rebuilding every embedding in place after the embedding model changed (`memex reembed`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import sqlalchemy as sa

from memex.documents.store import vector_literal
from memex.runtime import Runtime, record_embedding_model

_BATCH = 256


async def reembed(runtime: Runtime, *, on_progress: Callable[[int, int], None] | None = None) -> int:
    """Re-embed all chunks with the configured model; changes the vector dimension if it must. Returns the count."""
    embedder = await runtime.load_embedder()
    dimension = embedder.dimension
    async with runtime.engine.begin() as conn:
        total = (await conn.execute(sa.text("SELECT count(*) FROM chunks"))).scalar_one()
        current = (
            await conn.execute(
                sa.text(
                    "SELECT atttypmod FROM pg_attribute WHERE attrelid = 'chunks'::regclass AND attname = 'embedding'"
                )
            )
        ).scalar_one()
        if current != dimension:
            # A new dimension cannot hold the old vectors: zero them, then refill below, all before the index returns.
            await conn.execute(sa.text("DROP INDEX IF EXISTS chunks_embedding_hnsw"))
            await conn.execute(
                sa.text(
                    f"ALTER TABLE chunks ALTER COLUMN embedding TYPE vector({int(dimension)}) "
                    f"USING array_fill(0, ARRAY[{int(dimension)}])::vector"
                )
            )
    done = 0
    last_id = 0
    while True:
        async with runtime.engine.connect() as conn:
            rows = (
                await conn.execute(
                    sa.text("SELECT id, context, text FROM chunks WHERE id > :last ORDER BY id LIMIT :n"),
                    {"last": last_id, "n": _BATCH},
                )
            ).all()
        if not rows:
            break
        texts = [f"{r.context}\n{r.text}" if r.context else r.text for r in rows]
        vectors = await asyncio.to_thread(embedder.embed_documents, texts)
        async with runtime.engine.begin() as conn:
            await conn.execute(
                sa.text("UPDATE chunks SET embedding = CAST(:v AS vector) WHERE id = :id"),
                [{"id": r.id, "v": vector_literal(v)} for r, v in zip(rows, vectors, strict=True)],
            )
        last_id = rows[-1].id
        done += len(rows)
        if on_progress:
            on_progress(done, total)
    async with runtime.engine.begin() as conn:
        await conn.execute(
            sa.text(
                "CREATE INDEX IF NOT EXISTS chunks_embedding_hnsw ON chunks "
                "USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)"
            )
        )
        await record_embedding_model(conn, runtime.settings, replace=True)
    return done
