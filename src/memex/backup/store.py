"""All of the backup package's SQL: the dump's snapshot and its facts, checks of a restored copy, the status row.

Functions taking a psycopg `Connection` run beside the client programs (in a thread); those taking a SQLAlchemy
`AsyncConnection` are for services.
"""

from __future__ import annotations

import json
import re
from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg import sql
from sqlalchemy.ext.asyncio import AsyncConnection

STATUS_KEY = "backup_status"
# Tables whose rows say nothing about whether a database holds anyone's data.
_BOOKKEEPING = ("alembic_version", "memex_meta", "chunk_stats", "lexeme_stats")
_SNAPSHOT_ID = re.compile(r"^[0-9A-Fa-f-]+$")

TABLES_SQL = """
SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') ORDER BY c.relname
"""


def server_version_num(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT current_setting('server_version_num')::int").fetchone()
    assert row is not None
    return int(row[0])


def export_snapshot(conn: psycopg.Connection[Any]) -> str:
    """Start a read-only repeatable-read transaction and export its snapshot, for pg_dump and our own reads."""
    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    row = conn.execute("SELECT pg_export_snapshot()").fetchone()
    assert row is not None
    snapshot = str(row[0])
    if not _SNAPSHOT_ID.match(snapshot):
        raise ValueError(f"unexpected snapshot id {snapshot!r}")
    return snapshot


def pin_snapshot_sql(snapshot: str) -> str:
    """SET TRANSACTION SNAPSHOT takes no parameters; the id is checked to be hex and dashes only."""
    if not _SNAPSHOT_ID.match(snapshot):
        raise ValueError(f"unexpected snapshot id {snapshot!r}")
    return f"SET TRANSACTION SNAPSHOT '{snapshot}'"


def tables(conn: psycopg.Connection[Any]) -> list[str]:
    return [str(r[0]) for r in conn.execute(TABLES_SQL).fetchall()]


def row_counts(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """Rows in every table of the public schema (Memex's and the job queue's)."""
    counts: dict[str, int] = {}
    for name in tables(conn):
        row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(name))).fetchone()
        assert row is not None
        counts[name] = int(row[0])
    return counts


def revision(conn: psycopg.Connection[Any]) -> str | None:
    if "alembic_version" not in tables(conn):
        return None
    row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    return None if row is None else str(row[0])


def embedding_model(conn: psycopg.Connection[Any]) -> dict[str, Any] | None:
    if "memex_meta" not in tables(conn):
        return None
    row = conn.execute("SELECT value FROM memex_meta WHERE key = 'embedding_model'").fetchone()
    return None if row is None else dict(row[0])


def has_data(conn: psycopg.Connection[Any]) -> bool:
    """Whether any table other than bookkeeping and the job queue holds a row."""
    for name in tables(conn):
        if name in _BOOKKEEPING or name.startswith("procrastinate"):
            continue
        query = sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(sql.Identifier(name))
        row = conn.execute(query).fetchone()
        if row is not None and row[0]:
            return True
    return False


def sample_titles(conn: psycopg.Connection[Any], *, limit: int) -> list[str]:
    """Titles of a few indexed documents, spread over the store (a stable pseudo-random pick)."""
    rows = conn.execute(
        "SELECT title FROM documents WHERE status = 'indexed' AND chunk_count > 0 AND length(trim(title)) > 2 "
        "ORDER BY md5(id::text) LIMIT %s",
        (limit,),
    ).fetchall()
    return [str(r[0]) for r in rows]


def damaged_blobs(conn: psycopg.Connection[Any]) -> list[str]:
    """Original files whose bytes no longer hash to their name (blobs are content-addressed by sha256)."""
    if "blobs" not in tables(conn):
        return []
    rows = conn.execute(
        "SELECT sha256 FROM blobs WHERE encode(sha256(data), 'hex') <> sha256 AND sha256 ~ '^[0-9a-f]{64}$' "
        "ORDER BY sha256 LIMIT 5"
    ).fetchall()
    return [str(r[0]) for r in rows]


def forget_running_backup_jobs(conn: psycopg.Connection[Any], *, task_name: str) -> None:
    """A restored dump holds the backup job that made it as running; nobody runs it any more."""
    if "procrastinate_jobs" not in tables(conn):
        return
    conn.execute(
        "UPDATE procrastinate_jobs SET status = 'failed' WHERE task_name = %s AND status = 'doing'", (task_name,)
    )


def empty_schema_sql() -> str:
    """What `restore --force` runs, in the restore's own transaction, before loading the dump."""
    return "DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public;"


# The status of scheduled backups, one JSON value in memex_meta; updates merge keys, so concurrent writers of
# different keys do not overwrite each other.


async def read_status(conn: AsyncConnection) -> dict[str, Any]:
    value = (
        await conn.execute(sa.text("SELECT value FROM memex_meta WHERE key = :key"), {"key": STATUS_KEY})
    ).scalar_one_or_none()
    return dict(value) if isinstance(value, dict) else {}


async def merge_status(conn: AsyncConnection, values: dict[str, Any]) -> None:
    await conn.execute(
        sa.text(
            "INSERT INTO memex_meta (key, value) VALUES (:key, CAST(:value AS jsonb)) "
            "ON CONFLICT (key) DO UPDATE SET value = memex_meta.value || EXCLUDED.value"
        ),
        {"key": STATUS_KEY, "value": json.dumps(values)},
    )


def merge_status_sync(conn: psycopg.Connection[Any], values: dict[str, Any]) -> None:
    conn.execute(
        "INSERT INTO memex_meta (key, value) VALUES (%s, %s::jsonb) "
        "ON CONFLICT (key) DO UPDATE SET value = memex_meta.value || EXCLUDED.value",
        (STATUS_KEY, json.dumps(values)),
    )
