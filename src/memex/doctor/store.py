"""Every query the doctor runs: read-only looks at the server, the schema, the queue and Memex's own tables."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

# The Postgres settings the memory check compares, as pg_settings names.
TUNED_SETTINGS = (
    "shared_buffers",
    "effective_cache_size",
    "work_mem",
    "maintenance_work_mem",
    "max_connections",
    "superuser_reserved_connections",
)


@dataclass(frozen=True, slots=True)
class ServerVersions:
    postgres: str
    postgres_num: int
    pgvector: str | None
    pgvector_available: str | None


@dataclass(frozen=True, slots=True)
class Relation:
    name: str
    kind: str
    bytes: int


@dataclass(frozen=True, slots=True)
class StuckJob:
    id: int
    task: str
    status: str
    seconds: float


async def versions(conn: AsyncConnection) -> ServerVersions:
    row = (
        await conn.execute(
            sa.text(
                "SELECT current_setting('server_version') AS version, "
                "current_setting('server_version_num')::int AS num, "
                "(SELECT extversion FROM pg_extension WHERE extname = 'vector') AS pgvector, "
                "(SELECT default_version FROM pg_available_extensions WHERE name = 'vector') AS available"
            )
        )
    ).one()
    return ServerVersions(
        postgres=row.version, postgres_num=row.num, pgvector=row.pgvector, pgvector_available=row.available
    )


async def alembic_revision(conn: AsyncConnection) -> str | None:
    """The schema revision recorded in the database; None when it was never migrated."""
    exists = (await conn.execute(sa.text("SELECT to_regclass('alembic_version') IS NOT NULL"))).scalar_one()
    if not exists:
        return None
    found = (await conn.execute(sa.text("SELECT version_num FROM alembic_version LIMIT 1"))).scalar()
    return str(found) if found is not None else None


async def stored_embedding_model(conn: AsyncConnection) -> dict[str, object] | None:
    found = (
        await conn.execute(sa.text("SELECT value FROM memex_meta WHERE key = 'embedding_model'"))
    ).scalar_one_or_none()
    return dict(found) if isinstance(found, dict) else None


async def embedding_column_dimension(conn: AsyncConnection) -> int | None:
    """The dimension the chunks.embedding column is declared with (pgvector keeps it in atttypmod)."""
    found = (
        await conn.execute(
            sa.text(
                "SELECT atttypmod FROM pg_attribute WHERE attrelid = to_regclass('chunks') AND attname = 'embedding'"
            )
        )
    ).scalar_one_or_none()
    return int(found) if found is not None and int(found) > 0 else None


async def relation_sizes(conn: AsyncConnection, *, limit: int = 8) -> list[Relation]:
    """The largest tables (with their TOAST) and indexes of this database's public schema."""
    rows = await conn.execute(
        sa.text(
            "SELECT c.relname AS name, CASE c.relkind WHEN 'i' THEN 'index' ELSE 'table' END AS kind, "
            "CASE c.relkind WHEN 'i' THEN pg_relation_size(c.oid) ELSE pg_table_size(c.oid) END AS bytes "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'i', 'm') ORDER BY bytes DESC LIMIT :limit"
        ),
        {"limit": limit},
    )
    return [Relation(name=r.name, kind=r.kind, bytes=int(r.bytes)) for r in rows]


async def database_size(conn: AsyncConnection) -> int:
    return int((await conn.execute(sa.text("SELECT pg_database_size(current_database())"))).scalar_one())


async def hnsw_index_bytes(conn: AsyncConnection) -> int:
    """The size of every HNSW index of the database (normally the one on chunks.embedding)."""
    found = await conn.execute(
        sa.text(
            "SELECT coalesce(sum(pg_relation_size(c.oid)), 0) FROM pg_class c JOIN pg_am a ON a.oid = c.relam "
            "WHERE c.relkind = 'i' AND a.amname = 'hnsw'"
        )
    )
    return int(found.scalar_one())


async def settings_in_bytes(conn: AsyncConnection) -> dict[str, int]:
    """The tuned settings, memory ones in bytes and counts as they are."""
    rows = await conn.execute(
        sa.text("SELECT name, setting, unit FROM pg_settings WHERE name = ANY(:names)"), {"names": list(TUNED_SETTINGS)}
    )
    units = {"8kB": 8192, "kB": 1024, "MB": 1024 * 1024, None: 1}
    return {r.name: int(r.setting) * units.get(r.unit, 1) for r in rows}


async def data_directory(conn: AsyncConnection) -> str | None:
    """The server's data directory, when the role may read it (superusers and pg_read_all_settings)."""
    try:
        async with conn.begin_nested():
            return str((await conn.execute(sa.text("SHOW data_directory"))).scalar_one())
    except sa.exc.DBAPIError:
        return None


async def client_hosts(conn: AsyncConnection) -> int:
    """How many different client addresses hold connections to this database (Unix sockets count as one)."""
    found = await conn.execute(
        sa.text(
            "SELECT count(DISTINCT coalesce(host(client_addr), 'local')) FROM pg_stat_activity "
            "WHERE datname = current_database() AND backend_type = 'client backend'"
        )
    )
    return int(found.scalar_one())


async def live_workers(conn: AsyncConnection, *, seconds: float) -> int:
    """Job workers (procrastinate) that sent a heartbeat in the last `seconds`."""
    found = await conn.execute(
        sa.text("SELECT count(*) FROM procrastinate_workers WHERE last_heartbeat > now() - make_interval(secs => :s)"),
        {"s": seconds},
    )
    return int(found.scalar_one())


async def document_counts(conn: AsyncConnection) -> dict[str, int]:
    rows = await conn.execute(sa.text("SELECT status, count(*) AS n FROM documents GROUP BY status"))
    return {r.status: int(r.n) for r in rows}


async def failure_reasons(conn: AsyncConnection, *, limit: int = 5) -> list[tuple[str, int]]:
    """The commonest reasons documents failed, with how many failed for each."""
    rows = await conn.execute(
        sa.text(
            "SELECT coalesce(left(error, 200), 'no reason recorded') AS reason, count(*) AS n FROM documents "
            "WHERE status = 'failed' GROUP BY 1 ORDER BY n DESC, reason LIMIT :limit"
        ),
        {"limit": limit},
    )
    return [(r.reason, int(r.n)) for r in rows]


async def long_running_jobs(conn: AsyncConnection, *, seconds: float) -> list[StuckJob]:
    """Jobs in `doing` that started more than `seconds` ago (their last `started` event)."""
    rows = await conn.execute(
        sa.text(
            "SELECT j.id, j.task_name, j.status::text AS status, extract(epoch FROM now() - s.at) AS seconds "
            "FROM procrastinate_jobs j CROSS JOIN LATERAL (SELECT max(e.at) AS at FROM procrastinate_events e "
            "WHERE e.job_id = j.id AND e.type = 'started') s "
            "WHERE j.status = 'doing' AND s.at < now() - make_interval(secs => :s) ORDER BY s.at LIMIT 20"
        ),
        {"s": seconds},
    )
    return [StuckJob(id=r.id, task=r.task_name, status=r.status, seconds=float(r.seconds)) for r in rows]


async def waiting_jobs(conn: AsyncConnection, *, seconds: float) -> list[StuckJob]:
    """Jobs in `todo`, due, that have waited more than `seconds` (since their schedule, or since deferred)."""
    rows = await conn.execute(
        sa.text(
            "SELECT j.id, j.task_name, j.status::text AS status, extract(epoch FROM now() - w.since) AS seconds "
            "FROM procrastinate_jobs j CROSS JOIN LATERAL (SELECT coalesce(j.scheduled_at, "
            "(SELECT max(e.at) FROM procrastinate_events e WHERE e.job_id = j.id)) AS since) w "
            "WHERE j.status = 'todo' AND (j.scheduled_at IS NULL OR j.scheduled_at <= now()) "
            "AND w.since < now() - make_interval(secs => :s) ORDER BY w.since LIMIT 20"
        ),
        {"s": seconds},
    )
    return [StuckJob(id=r.id, task=r.task_name, status=r.status, seconds=float(r.seconds)) for r in rows]


async def now(conn: AsyncConnection) -> datetime:
    found: datetime = (await conn.execute(sa.text("SELECT now()"))).scalar_one()
    return found
