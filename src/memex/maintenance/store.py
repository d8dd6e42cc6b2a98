"""The SQL of maintenance: ANALYZE, the HNSW indexes and their sizes, REINDEX CONCURRENTLY. Identifiers come
from the catalog or from `db/tables.py` and are quoted; no value is ever formatted into SQL text."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

# Any constant: keeps two maintenance runs (the scheduled job, a person's command) from overlapping.
MAINTENANCE_LOCK_ID = 7_302_651_077_893


def _quote(conn: AsyncConnection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote(name)


async def analyze(conn: AsyncConnection, table: str) -> bool:
    """ANALYZE one table; False when it does not exist (an older schema)."""
    exists = (await conn.execute(sa.text("SELECT to_regclass(:t) IS NOT NULL"), {"t": table})).scalar_one()
    if exists:
        await conn.execute(sa.text(f"ANALYZE {_quote(conn, table)}"))
    return bool(exists)


async def hnsw_indexes(conn: AsyncConnection) -> list[sa.Row[tuple[object, ...]]]:
    """Each valid HNSW index: its name, table, size, the table's live rows (from the last ANALYZE), the vector
    dimension of its column and its reloptions."""
    rows = await conn.execute(
        sa.text(
            "SELECT ic.relname AS name, tc.relname AS table, pg_relation_size(ic.oid) AS bytes, "
            "tc.reltuples AS reltuples, a.atttypmod AS dimension, ic.reloptions AS options "
            "FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_class tc ON tc.oid = i.indrelid "
            "JOIN pg_am am ON am.oid = ic.relam JOIN pg_namespace n ON n.oid = ic.relnamespace "
            "JOIN pg_attribute a ON a.attrelid = tc.oid AND a.attnum = i.indkey[0] "
            "WHERE am.amname = 'hnsw' AND i.indisvalid AND n.nspname = current_schema() ORDER BY ic.relname"
        )
    )
    return list(rows)


async def count_rows(conn: AsyncConnection, table: str) -> int:
    return int((await conn.execute(sa.text(f"SELECT count(*) FROM {_quote(conn, table)}"))).scalar_one())


async def relation_bytes(conn: AsyncConnection, name: str) -> int:
    return int((await conn.execute(sa.text("SELECT pg_relation_size(to_regclass(:n))"), {"n": name})).scalar_one())


async def invalid_rebuilds(conn: AsyncConnection) -> list[str]:
    """Indexes left invalid by an interrupted REINDEX CONCURRENTLY (named `<index>_ccnew…`)."""
    rows = await conn.execute(
        sa.text(
            "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE NOT i.indisvalid AND c.relname ~ '_ccnew[0-9]*$' AND n.nspname = current_schema()"
        )
    )
    return [r.relname for r in rows]


async def drop_index_concurrently(conn: AsyncConnection, name: str) -> None:
    """Needs an autocommit connection."""
    await conn.execute(sa.text(f"DROP INDEX CONCURRENTLY IF EXISTS {_quote(conn, name)}"))


async def reindex_concurrently(conn: AsyncConnection, name: str) -> None:
    """Rebuild beside the old index, then swap: reads and writes go on meanwhile. Needs an autocommit connection."""
    await conn.execute(sa.text(f"REINDEX INDEX CONCURRENTLY {_quote(conn, name)}"))


async def try_lock(conn: AsyncConnection) -> bool:
    found = await conn.execute(sa.text("SELECT pg_try_advisory_lock(:id)"), {"id": MAINTENANCE_LOCK_ID})
    return bool(found.scalar_one())


async def unlock(conn: AsyncConnection) -> None:
    await conn.execute(sa.text("SELECT pg_advisory_unlock(:id)"), {"id": MAINTENANCE_LOCK_ID})
