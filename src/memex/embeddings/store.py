"""All SQL about which vectors the chunks hold: the model record, the staged column of a re-embedding, the swap.

`chunks.embedding` is the column every search and writer uses. A re-embedding fills a second column beside it
(`embedding_next`), indexes it, and swaps the two by renaming: a catalog change that commits with the new model
record, so no statement ever sees one without the other. The replaced vectors stay as `embedding_previous`
(with their index) for `memex reembed --rollback` until they are discarded.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from memex.embeddings.base import Vectors, vector_literal
from memex.errors import EmbeddingModelChanged

MODEL_KEY = "embedding_model"
PREVIOUS_KEY = "embedding_previous"
STAGED_KEY = "embedding_staged"

Column = Literal["embedding", "embedding_next", "embedding_previous"]
_TEMPORARY = "embedding_swap"


def index_name(column: str) -> str:
    return f"chunks_{column}_hnsw"


async def record(conn: AsyncConnection, key: str = MODEL_KEY, *, for_update: bool = False) -> dict[str, Any] | None:
    """A record of memex_meta; `for_update` holds its row until the transaction ends."""
    lock = " FOR UPDATE" if for_update else ""
    found = (
        await conn.execute(sa.text(f"SELECT value FROM memex_meta WHERE key = :key{lock}"), {"key": key})
    ).scalar_one_or_none()
    return dict(found) if isinstance(found, dict) else None


async def write(conn: AsyncConnection, value: dict[str, Any], key: str = MODEL_KEY) -> None:
    await conn.execute(
        sa.text(
            "INSERT INTO memex_meta (key, value) VALUES (:key, CAST(:value AS jsonb)) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
        ),
        {"key": key, "value": json.dumps(value, sort_keys=True)},
    )


async def insert_if_missing(conn: AsyncConnection, value: dict[str, Any]) -> dict[str, Any]:
    """Record the model on first use; returns the record as it now is."""
    await conn.execute(
        sa.text(
            "INSERT INTO memex_meta (key, value) VALUES (:key, CAST(:value AS jsonb)) ON CONFLICT (key) DO NOTHING"
        ),
        {"key": MODEL_KEY, "value": json.dumps(value, sort_keys=True)},
    )
    found = await record(conn)
    assert found is not None
    return found


async def forget(conn: AsyncConnection, key: str) -> None:
    await conn.execute(sa.text("DELETE FROM memex_meta WHERE key = :key"), {"key": key})


async def limit_lock_wait(conn: AsyncConnection, timeout: str) -> None:
    """Give up (SQLSTATE 55P03) rather than wait longer than `timeout` for a lock, for this transaction."""
    await conn.execute(sa.text("SELECT set_config('lock_timeout', :timeout, true)"), {"timeout": timeout})


async def generation_locking_chunks(conn: AsyncConnection) -> int:
    """The model record's generation, read by a statement that also locks `chunks` for the transaction.

    A swap renames columns of `chunks`, so it waits for this transaction to end: the vectors a search reads next
    are the ones this generation's model made.
    """
    found = (
        await conn.execute(
            sa.text(
                "SELECT coalesce((m.value ->> 'generation')::int, 0) FROM memex_meta m "
                "LEFT JOIN (SELECT 1 FROM chunks WHERE false) c ON true WHERE m.key = :key"
            ),
            {"key": MODEL_KEY},
        )
    ).scalar_one_or_none()
    return int(found or 0)


async def generation_for_writing(conn: AsyncConnection) -> int:
    """The generation, its row shared-locked: a swap waits for this writer, and a writer waits for a swap."""
    found = (
        await conn.execute(
            sa.text("SELECT coalesce((value ->> 'generation')::int, 0) FROM memex_meta WHERE key = :key FOR SHARE"),
            {"key": MODEL_KEY},
        )
    ).scalar_one_or_none()
    return int(found or 0)


async def check_generation(conn: AsyncConnection, generation: int) -> None:
    """Raise EmbeddingModelChanged unless the stored vectors are still of `generation` (first in a writer's
    transaction: the row lock it takes is what a swap waits for)."""
    if await generation_for_writing(conn) != generation:
        raise EmbeddingModelChanged()


async def column_dimension(conn: AsyncConnection, column: Column) -> int | None:
    """The dimension a vector column of chunks is declared with; None when the column does not exist."""
    found = (
        await conn.execute(
            sa.text(
                "SELECT atttypmod FROM pg_attribute WHERE attrelid = 'chunks'::regclass AND attname = :column "
                "AND NOT attisdropped"
            ),
            {"column": column},
        )
    ).scalar_one_or_none()
    return None if found is None else int(found)


async def add_column(conn: AsyncConnection, column: Column, *, dimension: int) -> None:
    """A nullable vector column of chunks (instant: no row is rewritten)."""
    await conn.execute(sa.text(f"ALTER TABLE chunks ADD COLUMN {column} vector({int(dimension)})"))


async def drop_column(conn: AsyncConnection, column: Column) -> None:
    """Drop a staged or previous vector column and its index (instant; the space returns as rows are vacuumed)."""
    await conn.execute(sa.text(f"DROP INDEX IF EXISTS {index_name(column)}"))
    await conn.execute(sa.text(f"ALTER TABLE chunks DROP COLUMN IF EXISTS {column}"))


async def progress(conn: AsyncConnection, column: Column) -> tuple[int, int]:
    """(chunks whose `column` is filled, all chunks)."""
    row = (await conn.execute(sa.text(f"SELECT count({column}) AS done, count(*) AS total FROM chunks"))).one()
    return int(row.done), int(row.total)


async def unfilled(conn: AsyncConnection, column: Column, *, after: int, limit: int) -> list[sa.Row[Any]]:
    """The next chunks (by id) whose `column` is still empty: (id, context, text)."""
    rows = await conn.execute(
        sa.text(
            f"SELECT id, context, text FROM chunks WHERE {column} IS NULL AND id > :after ORDER BY id LIMIT :limit"
        ),
        {"after": after, "limit": limit},
    )
    return list(rows)


async def fill(conn: AsyncConnection, column: Column, *, ids: Sequence[int], vectors: Vectors) -> None:
    """Set `column` for these chunks, in one statement (chunks deleted meanwhile are simply not there)."""
    await conn.execute(
        sa.text(
            f"UPDATE chunks c SET {column} = CAST(u.v AS vector) "
            "FROM unnest(CAST(:ids AS bigint[]), CAST(:vectors AS text[])) AS u(id, v) WHERE c.id = u.id"
        ),
        {"ids": list(ids), "vectors": [vector_literal(v) for v in vectors]},
    )


async def index_state(conn: AsyncConnection, column: Column) -> Literal["missing", "invalid", "valid"]:
    """Whether the HNSW index of `column` exists, and whether a build finished (a crashed CONCURRENTLY build
    leaves an invalid index behind)."""
    found = (
        await conn.execute(
            sa.text("SELECT i.indisvalid FROM pg_index i WHERE i.indexrelid = to_regclass(:name)"),
            {"name": index_name(column)},
        )
    ).scalar_one_or_none()
    return "missing" if found is None else "valid" if found else "invalid"


async def build_index(autocommit: AsyncConnection, column: Column) -> None:
    """Build `column`'s HNSW index without blocking writes (CREATE INDEX CONCURRENTLY: outside a transaction)."""
    await autocommit.execute(sa.text(f"DROP INDEX CONCURRENTLY IF EXISTS {index_name(column)}"))
    await autocommit.execute(
        sa.text(
            f"CREATE INDEX CONCURRENTLY {index_name(column)} ON chunks "
            f"USING hnsw ({column} vector_cosine_ops) WITH (m = 16, ef_construction = 64)"
        )
    )


async def swap(conn: AsyncConnection, staged: Column) -> None:
    """Make `staged` the searched column and the current one `embedding_previous`, in the caller's transaction.

    Renames only: no row is read or written but the NOT NULL check of the new column. The caller holds the
    model record's row, so no writer is between statements here.
    """
    await conn.execute(sa.text("LOCK TABLE chunks IN ACCESS EXCLUSIVE MODE"))
    if staged != "embedding_previous":
        await drop_column(conn, "embedding_previous")
    renames = [("embedding", _TEMPORARY), (staged, "embedding"), (_TEMPORARY, "embedding_previous")]
    for old, new in renames:
        await conn.execute(sa.text(f"ALTER TABLE chunks RENAME COLUMN {old} TO {new}"))
        await conn.execute(sa.text(f"ALTER INDEX IF EXISTS {index_name(old)} RENAME TO {index_name(new)}"))
    await conn.execute(sa.text("ALTER TABLE chunks ALTER COLUMN embedding_previous DROP NOT NULL"))
    await conn.execute(sa.text("ALTER TABLE chunks ALTER COLUMN embedding SET NOT NULL"))
