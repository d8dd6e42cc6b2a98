"""Postgres memory settings against this machine's memory, the HNSW index and the connection pools.

The rules are the usual ones, made concrete with real figures: shared_buffers a quarter of memory (more, up to
40%, when that lets the whole HNSW index stay cached), effective_cache_size half (Memex and its embedding model
share the machine), maintenance_work_mem large enough to hold the HNSW graph while it is built (pgvector slows
down many times once it no longer fits), work_mem what is left spread over every connection, and max_connections
what the Memex processes' pools can open at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from memex.doctor import machine, store
from memex.doctor.context import Context
from memex.doctor.models import Finding, Severity

MIB = 1024**2
GIB = 1024**3
# Each Memex process may open 20 connections (SQLAlchemy pool of 10 plus 10 overflow, db/engine.py) and its job
# worker 4 more (jobs/app.py; `memex worker` opens concurrency + 3).
CONNECTIONS_PER_PROCESS = 24
# Processes counted when no more are seen: a server and one CLI command or worker beside it.
MIN_PROCESSES = 2
# Room for psql, backups and monitoring beyond Memex's pools.
SPARE_CONNECTIONS = 10


@dataclass(frozen=True, slots=True)
class Advice:
    severity: Severity
    text: str


def size(value: int) -> str:
    """A memory size as postgresql.conf writes it (MB, or GB when whole)."""
    mib = max(1, round(value / MIB))
    return f"{mib // 1024}GB" if mib % 1024 == 0 and mib >= 1024 else f"{mib}MB"


def human(value: int) -> str:
    """A size for a person to read: 8.0 kB, 12.3 MB, 23.5 GB (powers of 1024)."""
    amount = float(value)
    for unit in ("bytes", "kB", "MB", "GB"):
        if amount < 1024:
            return f"{amount:.0f} {unit}" if unit == "bytes" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} TB"


def recommend(*, ram: int | None, hnsw: int, processes: int, reserved: int) -> dict[str, int]:
    """Recommended values (bytes, or a count for max_connections); memory ones only when `ram` is known."""
    connections = max(100, processes * CONNECTIONS_PER_PROCESS + reserved + SPARE_CONNECTIONS)
    graph = int(hnsw * 1.25)
    found: dict[str, int] = {"max_connections": connections}
    if ram is None:
        found["maintenance_work_mem"] = max(64 * MIB, graph)
        return found
    shared = max(128 * MIB, ram // 4)
    if shared < graph <= int(ram * 0.4):
        shared = graph
    found["shared_buffers"] = _round(shared)
    found["effective_cache_size"] = _round(max(ram // 2, shared))
    found["maintenance_work_mem"] = _round(min(max(64 * MIB, graph), max(64 * MIB, ram // 4)))
    found["work_mem"] = _round(min(64 * MIB, max(4 * MIB, (ram - shared) // (connections * 4))))
    return found


def _round(value: int) -> int:
    """Up to a value a person would write: whole GB from 4 GB, 64 MB steps from 256 MB, else whole MB."""
    step = GIB if value >= 4 * GIB else 64 * MIB if value >= 256 * MIB else MIB
    return max(MIB, -(-value // step) * step)


def advise(*, current: dict[str, int], wanted: dict[str, int], ram: int | None, hnsw: int) -> list[Advice]:
    """What is wrong with the current values, most serious first."""
    advice = []
    shared = current.get("shared_buffers", 0)
    if ram is not None and hnsw > ram // 2:
        advice.append(
            Advice(
                Severity.high,
                f"the HNSW index ({human(hnsw)}) is larger than half of memory ({human(ram)}): "
                "searches will read it from disk, many times slower",
            )
        )
    if "shared_buffers" in wanted and shared < wanted["shared_buffers"] // 2:
        fits = hnsw <= shared
        advice.append(
            Advice(
                Severity.low if fits else Severity.medium,
                f"shared_buffers is {size(shared)}, "
                + ("well under a quarter of memory" if fits else f"smaller than the HNSW index ({human(hnsw)})"),
            )
        )
    if ram is not None and shared > ram // 2:
        advice.append(Advice(Severity.medium, f"shared_buffers ({size(shared)}) is over half of memory ({size(ram)})"))
    cache = current.get("effective_cache_size", 0)
    if "effective_cache_size" in wanted and cache < wanted["effective_cache_size"] // 2:
        advice.append(
            Advice(
                Severity.medium if cache < hnsw else Severity.low,
                f"effective_cache_size is {size(cache)}: the planner underrates the memory caching indexes",
            )
        )
    maintenance = current.get("maintenance_work_mem", 0)
    if maintenance < hnsw:
        advice.append(
            Advice(
                Severity.medium,
                f"maintenance_work_mem ({size(maintenance)}) cannot hold the HNSW graph ({human(hnsw)}): "
                "rebuilding it (`memex db maintain`, `memex reembed`) will be many times slower",
            )
        )
    work = current.get("work_mem", 0)
    if "work_mem" in wanted and work < wanted["work_mem"] // 4:
        advice.append(Advice(Severity.low, f"work_mem is {size(work)}: sorts of large result sets spill to disk"))
    usable = current.get("max_connections", 0) - current.get("superuser_reserved_connections", 3)
    fits_processes = usable // CONNECTIONS_PER_PROCESS
    if fits_processes < MIN_PROCESSES:
        advice.append(
            Advice(
                Severity.high,
                f"max_connections leaves {usable} connections: fewer than {MIN_PROCESSES} Memex processes "
                f"({CONNECTIONS_PER_PROCESS} each at most) fit before new connections are refused",
            )
        )
    elif current.get("max_connections", 0) < wanted["max_connections"]:
        advice.append(
            Advice(
                Severity.medium,
                f"max_connections is {current.get('max_connections')}: {fits_processes} Memex processes at full "
                f"pool ({CONNECTIONS_PER_PROCESS} connections each) fit, fewer than the ones that run",
            )
        )
    return sorted(advice, key=lambda a: a.severity.rank)


async def postgres_settings(ctx: Context) -> list[Finding]:
    local = ctx.local_database
    ram = machine.total_memory() if local else None
    async with ctx.engine_or_fail().connect() as conn:
        current = await store.settings_in_bytes(conn)
        hnsw = await store.hnsw_index_bytes(conn)
        workers = await store.live_workers(conn, seconds=300)
        relations = await store.relation_sizes(conn)
        total = await store.database_size(conn)
    processes = max(MIN_PROCESSES, workers + 1)
    wanted = recommend(
        ram=ram, hnsw=hnsw, processes=processes, reserved=current.get("superuser_reserved_connections", 3)
    )
    advice = advise(current=current, wanted=wanted, ram=ram, hnsw=hnsw)
    lines = [
        f"{name} = {value if name == 'max_connections' else size(value)}"
        for name, value in wanted.items()
        if value != current.get(name)
    ]
    where = f"{ctx.data_dir / 'pg' / 'postgresql.conf'}" if ctx.settings.embedded else "the server's postgresql.conf"
    basis = (
        f"this machine's {human(ram)} of memory"
        if ram
        else "the index size and the pools (the database runs elsewhere: set shared_buffers to about 25% and effective_cache_size to about 75% of its memory)"
    )
    data = {
        "memory_bytes": ram,
        "hnsw_bytes": hnsw,
        "database_bytes": total,
        "processes": processes,
        "current": {k: current.get(k) for k in wanted},
        "recommended": wanted,
        "postgresql_conf": lines,
        "largest": [{"name": r.name, "kind": r.kind, "bytes": r.bytes} for r in relations],
    }
    conf = "\n".join(lines)
    fix = (
        f"Computed from {basis}, the HNSW index ({human(hnsw)}) and {processes} Memex processes. Put these lines in "
        f"{where} (or run ALTER SYSTEM SET for each) and restart PostgreSQL:\n{conf}"
    )
    sizes = ", ".join(f"{r.name} {human(r.bytes)}" for r in relations[:5])
    if not advice:
        return [
            Finding(
                Severity.info,
                "postgres.settings",
                f"Postgres memory settings suit {basis}; database {human(total)} (largest: {sizes})",
                fix if lines else "",
                data,
            )
        ]
    return [
        Finding(
            advice[0].severity,
            "postgres.settings",
            "; ".join(a.text for a in advice) + f". Database {human(total)} (largest: {sizes}).",
            fix,
            data,
        )
    ]
