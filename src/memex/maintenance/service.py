"""Maintenance after heavy churn: ANALYZE Memex's tables, rebuild an HNSW index that grew far past its rows.

pgvector's HNSW index never shrinks: deleted vectors leave their pages behind (VACUUM only marks them for reuse),
so after large deletions the index can be many times the size its live rows need, and a search reads those pages.
Its bloat is estimated honestly from pgvector's on-disk layout: an element tuple (72 bytes of header and heap
pointers, then the vector: 8 bytes plus 4 per dimension) and a neighbour tuple (4 bytes plus 6 per neighbour:
2·m on layer 0, m more on each layer above) share 8 kB pages, so a fresh build for N rows takes about
N / (elements per page) pages. pgstattuple cannot read HNSW indexes, so this estimate is what there is.
"""

from __future__ import annotations

import math
import time

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from memex.db.tables import metadata
from memex.errors import Conflict
from memex.maintenance import store
from memex.maintenance.models import HnswIndex, IndexAction, MaintenanceReport

log = structlog.get_logger("memex.maintenance")

# Rebuild when the index is this many times the size a fresh build would have. The estimate matched real builds
# to the page (pgvector 0.6, 384 and 1536 dimensions); 2x leaves room for other versions and layer variance.
REINDEX_BLOAT_RATIO = 2.0
# Below this the waste is not worth a rebuild, whatever the ratio.
REINDEX_MIN_BYTES = 1024 * 1024
# The queue's tables churn most of all; ANALYZE them with Memex's own.
QUEUE_TABLES = ("procrastinate_jobs", "procrastinate_events", "procrastinate_workers", "procrastinate_periodic_defers")

_PAGE = 8192
# A page less its header (24 bytes) and pgvector's special space (8 bytes).
_PAGE_USABLE = _PAGE - 24 - 8
_DEFAULT_M = 16


def _maxalign(size: int) -> int:
    return (size + 7) // 8 * 8


def expected_bytes(*, rows: int, dimension: int, m: int = _DEFAULT_M) -> int:
    """The size of a freshly built HNSW index over `rows` vectors of `dimension` (metapage included)."""
    element = _maxalign(72 + 8 + 4 * dimension)
    # Layer l holds a fraction (1/m)^l of the elements: on average 1/(m-1) layers above layer 0.
    neighbours = _maxalign(4 + 6 * round((2 + 1 / (m - 1)) * m))
    pair = element + neighbours + 2 * 4  # two line pointers
    per_page = _PAGE_USABLE // pair
    pages = math.ceil(rows / per_page) if per_page else rows * math.ceil(pair / _PAGE_USABLE)
    return (pages + 1) * _PAGE


def _m(options: object) -> int:
    for option in options or []:  # type: ignore[attr-defined]
        name, _, value = str(option).partition("=")
        if name == "m" and value.isdigit():
            return int(value)
    return _DEFAULT_M


async def hnsw_indexes(conn: AsyncConnection) -> list[HnswIndex]:
    """Every HNSW index with its size and the size its live rows need (rows from the last ANALYZE)."""
    found = []
    for row in await store.hnsw_indexes(conn):
        table = str(row.table)
        reltuples = float(row.reltuples)
        rows = int(reltuples) if reltuples >= 0 else await store.count_rows(conn, table)
        dimension, m = int(row.dimension), _m(row.options)
        found.append(
            HnswIndex(
                name=str(row.name),
                table=table,
                bytes=int(row.bytes),
                live_rows=rows,
                dimension=dimension,
                m=m,
                expected_bytes=expected_bytes(rows=rows, dimension=dimension, m=m),
            )
        )
    return found


def bloated(index: HnswIndex, *, ratio: float = REINDEX_BLOAT_RATIO) -> bool:
    return index.bytes >= REINDEX_MIN_BYTES and index.ratio > ratio


async def maintain(engine: AsyncEngine, *, ratio: float = REINDEX_BLOAT_RATIO) -> MaintenanceReport:
    """ANALYZE every Memex table, then REINDEX CONCURRENTLY each HNSW index more than `ratio` times too large."""
    async with engine.connect() as raw:
        conn = await raw.execution_options(isolation_level="AUTOCOMMIT")
        if not await store.try_lock(conn):
            raise Conflict("another `memex db maintain` is running on this database; try again when it has finished")
        try:
            return await _maintain(conn, ratio=ratio)
        finally:
            await store.unlock(conn)


async def _maintain(conn: AsyncConnection, *, ratio: float) -> MaintenanceReport:
    started = time.perf_counter()
    analyzed = [t for t in [*(t.name for t in metadata.sorted_tables), *QUEUE_TABLES] if await store.analyze(conn, t)]
    analyze_seconds = time.perf_counter() - started
    dropped = await store.invalid_rebuilds(conn)
    for name in dropped:
        await store.drop_index_concurrently(conn, name)
    actions = []
    for index in await hnsw_indexes(conn):
        sizes = f"{_mib(index.bytes)} for {index.live_rows:,} rows, about {index.ratio:.1f}x the {_mib(index.expected_bytes)} a fresh build takes"
        if not bloated(index, ratio=ratio):
            why = "below" if index.bytes >= REINDEX_MIN_BYTES else f"smaller than {_mib(REINDEX_MIN_BYTES)}, under"
            actions.append(IndexAction(index=index, reindexed=False, reason=f"{sizes}: {why} the {ratio:g}x threshold"))
            continue
        began = time.perf_counter()
        await store.reindex_concurrently(conn, index.name)
        seconds = time.perf_counter() - began
        after = await store.relation_bytes(conn, index.name)
        log.info("hnsw index rebuilt", index=index.name, bytes_before=index.bytes, bytes_after=after, seconds=seconds)
        actions.append(
            IndexAction(
                index=index,
                reindexed=True,
                reason=f"{sizes}: over the {ratio:g}x threshold",
                bytes_after=after,
                seconds=seconds,
            )
        )
    return MaintenanceReport(
        analyzed=analyzed, analyze_seconds=analyze_seconds, indexes=actions, dropped_invalid=dropped
    )


def _mib(size: int) -> str:
    return f"{size / 1024 / 1024:,.1f} MiB" if size >= 1024 * 1024 else f"{size / 1024:,.0f} kB"
