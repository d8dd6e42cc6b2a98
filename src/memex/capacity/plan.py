"""The estimate: the operator's figures times the measured constants, every step written out."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from memex.capacity.constants import Constants
from memex.errors import InvalidInput

# Share of the database added for WAL, dead rows between vacuums and free space.
DISK_HEADROOM = 0.25
# CPUs planned busy at most this much at the stated peak, so that bursts queue briefly rather than pile up.
TARGET_UTILISATION = 0.7
# Without --qps: each user sends one search or question a minute at the busiest time.
QUERIES_PER_USER_PER_SECOND = 1 / 60
# Cores a `memex worker` uses (its embedding runs on every core it is given; two is a typical container).
CORES_PER_WORKER = 2
# GIN's pending list (PostgreSQL's gin_pending_list_limit, 4 MB by default): new entries wait there, in pages of
# the index, until they are merged; those pages stay in the index file.
GIN_PENDING_LIST_BYTES = 4 * 1024**2
# PostgreSQL's own memory beyond the indexes it should keep cached (shared buffers for tables, connections).
POSTGRES_BASE_MB = 512


@dataclass(frozen=True)
class Line:
    """One figure of the estimate and the arithmetic that gave it."""

    name: str
    value: float
    unit: str
    arithmetic: str


@dataclass(frozen=True)
class Plan:
    inputs: dict[str, float]
    lines: list[Line]

    def value(self, name: str) -> float:
        return next(line.value for line in self.lines if line.name == name)

    def as_dict(self, constants: Constants) -> dict[str, object]:
        return {
            "inputs": self.inputs,
            "constants": constants.as_dict(),
            "estimate": {line.name: asdict(line) for line in self.lines},
        }


def size(n_bytes: float) -> str:
    """Bytes for people: 1.2 GiB, 340 MiB."""
    for unit, scale in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.3g} {unit}"
    return f"{n_bytes:.0f} B"


def estimate(
    c: Constants,
    *,
    documents: int,
    avg_kb: float,
    users: int | None = None,
    qps: float | None = None,
    ingest_hours: float = 24.0,
) -> Plan:
    """Disk, memory, workers and API replicas for `documents` files of `avg_kb` KB of text each."""
    if documents < 0 or avg_kb <= 0 or ingest_hours <= 0:
        raise InvalidInput("--documents must be 0 or more, and --avg-kb and --ingest-hours more than 0")
    if qps is None:
        qps = (users or 1) * QUERIES_PER_USER_PER_SECOND
        qps_note = f"{users or 1} users × 1 query a minute = {qps:.3g} q/s (no --qps given)"
    else:
        qps_note = f"--qps {qps:g}"
    lines: list[Line] = []

    def add(name: str, value: float, unit: str, arithmetic: str) -> float:
        lines.append(Line(name=name, value=value, unit=unit, arithmetic=arithmetic))
        return value

    text_kb = documents * avg_kb
    chunks = add(
        "chunks",
        math.ceil(text_kb * c.chunks_per_text_kb),
        "chunks",
        f"{documents:,} documents × {avg_kb:g} KB × {c.chunks_per_text_kb:.3g} chunks/KB",
    )

    def per_chunk(name: str, each: float, what: str) -> float:
        return add(
            name, chunks * each, "bytes", f"{chunks:,.0f} chunks × {each:,.0f} B ({what}) = {size(chunks * each)}"
        )

    table = per_chunk("chunk_table_bytes", c.chunk_table_bytes, "text, vector and tsvector a chunk")
    hnsw = per_chunk("hnsw_index_bytes", c.hnsw_bytes, "HNSW index a chunk")
    gin_each = chunks * c.gin_bytes
    gin = add(
        "gin_index_bytes",
        gin_each + GIN_PENDING_LIST_BYTES,
        "bytes",
        f"{chunks:,.0f} chunks × {c.gin_bytes:,.0f} B (full-text index a chunk) + {size(GIN_PENDING_LIST_BYTES)} "
        f"(its pending list) = {size(gin_each + GIN_PENDING_LIST_BYTES)}",
    )
    btree = per_chunk("other_chunk_index_bytes", c.chunk_btree_bytes, "keys and b-tree indexes a chunk")
    bm25 = per_chunk("bm25_stats_bytes", c.bm25_stats_bytes, "term statistics a chunk")
    docs = add(
        "documents_bytes",
        documents * c.document_bytes,
        "bytes",
        f"{documents:,} × {c.document_bytes:,.0f} B a document row = {size(documents * c.document_bytes)}",
    )
    blobs = add(
        "blobs_bytes",
        text_kb * 1024 * c.blob_bytes_per_file_byte,
        "bytes",
        f"{text_kb:,.0f} KB of files × {c.blob_bytes_per_file_byte:.3g} (stored, after compression) = "
        f"{size(text_kb * 1024 * c.blob_bytes_per_file_byte)}",
    )
    database = add(
        "database_bytes",
        table + hnsw + gin + btree + bm25 + docs + blobs,
        "bytes",
        f"{size(table)} chunks + {size(hnsw)} HNSW + {size(gin)} GIN + {size(btree + bm25)} other + "
        f"{size(docs)} documents + {size(blobs)} blobs = {size(table + hnsw + gin + btree + bm25 + docs + blobs)}",
    )
    disk = database * (1 + DISK_HEADROOM) + hnsw
    add(
        "disk_bytes",
        disk,
        "bytes",
        f"{size(database)} × {1 + DISK_HEADROOM:g} (WAL, dead rows) + {size(hnsw)} (a second HNSW while "
        f"`memex db maintain` rebuilds it) = {size(disk)}; each backup adds about {size(table + docs + blobs)}",
    )
    pg_memory = hnsw + gin + POSTGRES_BASE_MB * 1024**2
    add(
        "postgres_memory_bytes",
        pg_memory,
        "bytes",
        f"{size(hnsw)} HNSW + {size(gin)} GIN kept in RAM + {POSTGRES_BASE_MB} MiB base = {size(pg_memory)}; "
        f"set maintenance_work_mem ≥ {size(hnsw)} to rebuild the HNSW index in memory",
    )
    ingest_cores = chunks / (c.embed_chunks_per_cpu_second * ingest_hours * 3600)
    workers = add(
        "workers",
        max(1, math.ceil(ingest_cores / CORES_PER_WORKER)),
        "workers",
        f"{chunks:,.0f} chunks ÷ ({c.embed_chunks_per_cpu_second:.3g} chunks/s a core × {ingest_hours:g} h) = "
        f"{ingest_cores:.2f} cores ÷ {CORES_PER_WORKER} cores a worker, at least 1",
    )
    api_cores = qps * c.search_cpu_ms / 1000 / TARGET_UTILISATION
    replicas = add(
        "api_replicas",
        max(1, math.ceil(api_cores)),
        "replicas",
        f"{qps_note} × {c.search_cpu_ms:.3g} ms CPU a search ÷ {TARGET_UTILISATION:.0%} busy = {api_cores:.2f} "
        "cores, one replica a core, at least 1 (run 2 for availability)",
    )
    db_cores = qps * c.search_db_cpu_ms / 1000 / TARGET_UTILISATION
    add(
        "postgres_cores",
        db_cores,
        "cores",
        f"{qps:.3g} q/s × {c.search_db_cpu_ms:.3g} ms database CPU a search ÷ {TARGET_UTILISATION:.0%} busy",
    )
    processes = replicas + workers
    add(
        "memex_memory_bytes",
        processes * c.process_rss_mb * 1024**2,
        "bytes",
        f"({replicas:.0f} replicas + {workers:.0f} workers) × {c.process_rss_mb:.0f} MiB a process with the model "
        f"= {size(processes * c.process_rss_mb * 1024**2)}",
    )
    inputs = {"documents": documents, "avg_kb": avg_kb, "qps": round(qps, 4), "ingest_hours": ingest_hours}
    if users is not None:
        inputs["users"] = users
    return Plan(inputs=inputs, lines=lines)
