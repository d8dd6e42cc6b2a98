"""Search under load over HTTP: N concurrent clients against a real `memex serve` for a fixed time.

    python benchmarks/search_load.py [--chunks 10000] [--clients 1,8,32] [--seconds 20]
                                     [--baseline-env MEMEX_METRICS=false ...] [--rounds 3]

The KB is filled with synthetic chunks (real sentences and their real embeddings, mixed with noise; see
search_latency.py), a `memex serve --no-worker` subprocess serves it, and each client loops over real
SciFact queries through GET /api/search with an API key. The server's query cache is off, so every request
pays for its query embedding. Prints p50/p95/p99 latency, throughput and errors per client count.

With --baseline-env, a second server on the same database runs with those settings changed (a feature turned
off), and the two take turns, --rounds times per client count, so that both see the same machine. Each run
then also reports the baseline's figures and `throughput_ratio` (server / baseline; 1.0 is no overhead).

Throughput against the CPU: each run also sums the CPU time (user + system, psutil) that the `memex serve`
process tree and the PostgreSQL server's processes (the postmaster and its children, found from a backend's
pid) spent, and the benchmark's own (the client's, not counted in the cost). The single-client run gives
`cpu_ms_per_query`, hence `cpu_limit_rps` = cores / CPU seconds per query, and `sustained_share` = the best
throughput of the runs / `cpu_limit_rps` (goal >= 0.8); `where_the_time_goes` sets the single-client latency
beside its CPU and the server's own timings (means from its /metrics histograms).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import psycopg
from harness import SCIFACT, emit, log, percentile, read_corpus, scratch_database
from prometheus_client.parser import text_string_to_metric_families
from search_latency import corpus_material
from served import free_port, server_env, synthetic_store, wait_ready

# The server's own histograms of a search request, read from /metrics before and after a run: (name, labels).
_TIMINGS = {
    "http_ms": ("memex_http_request_duration_seconds", {"route": "/api/search", "status": "200"}),
    "search_ms": ("memex_search_duration_seconds", {}),
    "embedding_ms": ("memex_search_embedding_duration_seconds", {}),
    "sql_ms": ("memex_search_sql_duration_seconds", {}),
}
CPU_PARTS = ("server", "postgres", "client")
GOAL_SHARE = 0.8


def _tree_cpu(root: psutil.Process) -> float:
    """CPU seconds (user + system) of a process and its descendants, with the exited children they have reaped."""
    total = 0.0
    try:
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            t = process.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
    return total


def _machine_busy() -> float:
    """CPU seconds every core of the machine has been busy (not idle, not waiting for I/O) since boot."""
    t = psutil.cpu_times()
    return float(sum(t) - t.idle - getattr(t, "iowait", 0.0))


def find_postmaster(url: str) -> psutil.Process | None:
    """The PostgreSQL server's main process, when it runs on this machine (else None: its CPU is not measured).

    A backend's parent is the postmaster. It must be the server's own: its pid is the one in the data
    directory's postmaster.pid, or its working directory is the data directory, or (where the data directory is
    not ours to read) it started with the server. So a pid seen from another pid namespace (a container) or
    another machine is not taken for it.
    """
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT pg_backend_pid(), extract(epoch FROM pg_postmaster_start_time())").fetchone()
        assert row is not None
        try:
            data_dir = conn.execute("SELECT current_setting('data_directory')").fetchone()
        except psycopg.Error:  # needs superuser or pg_read_all_settings
            data_dir = None
        backend_pid, started = int(row[0]), float(row[1])
        try:  # while the connection is open: its backend exits with it
            postmaster = psutil.Process(backend_pid).parent()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return None
    try:
        if postmaster is None or "postgres" not in postmaster.name():
            return None
        if data_dir is not None:
            with contextlib.suppress(OSError):
                if (Path(data_dir[0]) / "postmaster.pid").read_text().split()[0] == str(postmaster.pid):
                    return postmaster
            with contextlib.suppress(psutil.AccessDenied):
                return postmaster if Path(postmaster.cwd()) == Path(data_dir[0]) else None
        # Postgres records its start time after its setup, a second or more after the process started.
        return postmaster if 0 <= started - postmaster.create_time() < 60 else None
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


@dataclass
class Probe:
    """What one server's runs are measured with: its process, Postgres', the client's and its /metrics."""

    url: str
    server: psutil.Process
    postgres: psutil.Process | None
    client: psutil.Process = field(default_factory=psutil.Process)

    def cpu(self) -> dict[str, float | None]:
        own = self.client.cpu_times()  # its own threads only: the servers it started are its children
        return {
            "server": _tree_cpu(self.server),
            "postgres": _tree_cpu(self.postgres) if self.postgres is not None else None,
            "client": own.user + own.system,
        }

    async def timings(self) -> dict[str, tuple[float, float]] | None:
        """(sum, count) of each of _TIMINGS, or None when the server serves no metrics."""
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as client:
            response = await client.get("/metrics")
        if response.status_code != 200:
            return None
        found = dict.fromkeys(_TIMINGS, (0.0, 0.0))
        for family in text_string_to_metric_families(response.text):
            for key, (name, labels) in _TIMINGS.items():
                if family.name != name:
                    continue
                total, count = found[key]
                for sample in family.samples:
                    if not all(sample.labels.get(k) == v for k, v in labels.items()):
                        continue
                    if sample.name == f"{name}_sum":
                        total += sample.value
                    elif sample.name == f"{name}_count":
                        count += sample.value
                found[key] = (total, count)
        return found


@dataclass
class Run:
    """What the clients saw in one run (or several runs of one server, merged)."""

    clients: int
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    wall: float = 0.0
    # CPU seconds spent during the run; None where not measured (a Postgres on another machine).
    cpu: dict[str, float | None] = field(default_factory=lambda: dict.fromkeys(CPU_PARTS, 0.0))
    # CPU seconds the whole machine was busy during the run: the measured processes and everything else.
    machine: float = 0.0
    # The server's own histograms over the run: (sum of seconds, count); None without /metrics.
    timings: dict[str, tuple[float, float]] | None = field(default_factory=lambda: dict.fromkeys(_TIMINGS, (0.0, 0.0)))

    def add(self, other: Run) -> None:
        self.latencies += other.latencies
        self.wall += other.wall
        self.machine += other.machine
        for status, n in other.errors.items():
            self.errors[status] = self.errors.get(status, 0) + n
        for part in CPU_PARTS:
            mine, theirs = self.cpu[part], other.cpu[part]
            self.cpu[part] = None if mine is None or theirs is None else mine + theirs
        if self.timings is None or other.timings is None:
            self.timings = None
        else:
            self.timings = {k: (s + other.timings[k][0], n + other.timings[k][1]) for k, (s, n) in self.timings.items()}

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.wall

    def cpu_ms_per_query(self) -> dict[str, float | None]:
        """CPU milliseconds per answered query: the server's, Postgres', their sum, and the client's."""
        n = max(len(self.latencies), 1)
        per = {part: None if (v := self.cpu[part]) is None else v * 1000 / n for part in CPU_PARTS}
        server, postgres = per["server"], per["postgres"]
        per["server_and_postgres"] = None if server is None or postgres is None else server + postgres
        return {k: None if v is None else round(v, 3) for k, v in per.items()}

    def busy_cores(self) -> dict[str, float | None]:
        """Cores kept busy on average during the run: by each measured part, and on the whole machine."""
        wall = self.wall or 1.0
        busy = {part: None if (v := self.cpu[part]) is None else round(v / wall, 3) for part in CPU_PARTS}
        measured = sum(v for part in CPU_PARTS if (v := self.cpu[part]) is not None)
        # "other": the rest of the machine's busy time, work this benchmark did not cause (a shared machine).
        return busy | {"machine": round(self.machine / wall, 3), "other": round((self.machine - measured) / wall, 3)}

    def timing_means_ms(self) -> dict[str, float | None] | None:
        if self.timings is None:
            return None
        return {k: round(s * 1000 / n, 3) if n else None for k, (s, n) in self.timings.items()}

    def summary(self) -> dict[str, object]:
        return {
            "clients": self.clients,
            "requests": len(self.latencies) + sum(self.errors.values()),
            "errors": sum(self.errors.values()),
            "error_statuses": self.errors,
            "throughput_rps": round(self.throughput, 2),
            "p50_ms": round(percentile(self.latencies, 50), 2),
            "p95_ms": round(percentile(self.latencies, 95), 2),
            "p99_ms": round(percentile(self.latencies, 99), 2),
            "cpu_ms_per_query": self.cpu_ms_per_query(),
            "busy_cores": self.busy_cores(),
        }


async def _measured(probe: Probe, key: str, queries: list[str], *, clients: int, seconds: float) -> Run:
    """A run of `clients` against the probe's server, with the CPU and the server's timings it cost."""
    timings_before = await probe.timings()
    cpu_before, machine_before = probe.cpu(), _machine_busy()
    run = await _run_clients(probe.url, key, queries, clients=clients, seconds=seconds)
    cpu_after, machine_after = probe.cpu(), _machine_busy()
    run.machine = machine_after - machine_before
    timings_after = await probe.timings()
    for part in CPU_PARTS:
        before, after = cpu_before[part], cpu_after[part]
        run.cpu[part] = None if before is None or after is None else after - before
    if timings_before is None or timings_after is None:
        run.timings = None
    else:
        run.timings = {k: (timings_after[k][0] - s, timings_after[k][1] - n) for k, (s, n) in timings_before.items()}
    return run


async def _run_clients(base: str, key: str, queries: list[str], *, clients: int, seconds: float) -> Run:
    run = Run(clients=clients)
    latencies, errors = run.latencies, run.errors
    stop_at = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def client_loop(n: int, client: httpx.AsyncClient) -> None:
        i = n * 7919
        while time.monotonic() < stop_at:
            query = queries[i % len(queries)]
            i += 1
            started = time.perf_counter()
            try:
                response = await client.get("/api/search", params={"q": query, "limit": 10})
                status = str(response.status_code)
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            elapsed = (time.perf_counter() - started) * 1000
            if status == "200":
                latencies.append(elapsed)
            else:
                errors[status] = errors.get(status, 0) + 1

    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {key}"}, limits=limits, timeout=60
    ) as client:
        started = time.perf_counter()
        await asyncio.gather(*(client_loop(n, client) for n in range(clients)))
        run.wall = time.perf_counter() - started
    return run


async def main(args: argparse.Namespace) -> dict[str, object]:
    sentences, words = corpus_material(args.corpus, min(1000, max(200, args.chunks // 20)))
    queries = list(dict.fromkeys(r["text"] for r in read_corpus(args.queries_file)))
    with scratch_database() as scratch:
        env = server_env(scratch, MEMEX_QUERY_CACHE_SIZE="0", MEMEX_RATE_LIMIT_SEARCH="1000000/minute")
        key = await synthetic_store(
            scratch, env, sentences=sentences, words=words, chunks=args.chunks, kb_prefix="load"
        )

        servers = {"server": env} | ({"baseline": env | args.baseline_env} if args.baseline_env else {})
        procs: list[subprocess.Popen[bytes]] = []
        postmaster = find_postmaster(scratch.url)
        log(
            f"Postgres server process: {postmaster.pid if postmaster else 'not on this machine (its CPU is not counted)'}"
        )
        try:
            urls = {}
            probes = {}
            for name, environment in servers.items():
                port = free_port()
                urls[name] = f"http://127.0.0.1:{port}"
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "memex", "serve", "--no-worker", "--port", str(port)],
                        env=environment,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.PIPE,
                    )
                )
                await wait_ready(urls[name], procs[-1])
                probes[name] = Probe(url=urls[name], server=psutil.Process(procs[-1].pid), postgres=postmaster)
                log(f"{name} ready; warming up")
                await _run_clients(urls[name], key, queries, clients=2, seconds=3)
            runs = []
            single: Run | None = None
            if 1 not in args.clients:
                single = await _measured(probes["server"], key, queries, clients=1, seconds=args.seconds)
                log(f"1 client (for the CPU cost): {single.summary()}")
            for clients in args.clients:
                result, merged = await _compare(
                    probes, key, queries, clients=clients, seconds=args.seconds, rounds=args.rounds
                )
                log(f"{clients} clients: {result}")
                runs.append(result)
                if clients == 1:
                    single = merged
        finally:
            for proc in procs:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
    assert single is not None
    return {
        "chunks": args.chunks,
        "synthetic": True,
        "seconds_per_run": args.seconds,
        "query_cache": False,
        "baseline_env": args.baseline_env or None,
        **cpu_figures(single, runs),
        "runs": runs,
    }


def cpu_figures(single: Run, runs: list[dict[str, object]]) -> dict[str, object]:
    """What one query costs in CPU (from the single-client run), the rate the cores allow, and the share reached."""
    cores = os.cpu_count() or 1
    per = single.cpu_ms_per_query()
    best = max(runs, key=lambda r: float(r["throughput_rps"]))  # type: ignore[arg-type]
    best_rps = float(best["throughput_rps"])  # type: ignore[arg-type]
    cost, client = per["server_and_postgres"], per["client"]
    limit = cores * 1000 / cost if cost else None
    limit_with_client = cores * 1000 / (cost + client) if cost and client is not None else None
    # The cost per query measured in the best run itself: lower than one client's where idle threads spin.
    best_cost = best["cpu_ms_per_query"]["server_and_postgres"]  # type: ignore[index]
    limit_at_best = cores * 1000 / best_cost if best_cost else None
    p50 = percentile(single.latencies, 50)
    timings = single.timing_means_ms()
    mean = statistics.fmean(single.latencies) if single.latencies else float("nan")
    return {
        "cores": cores,
        "cpu_queries": len(single.latencies),
        "cpu_ms_per_query": {"server": per["server"], "postgres": per["postgres"], "total": cost},
        "client_cpu_ms_per_query": client,
        "cpu_limit_rps": round(limit, 2) if limit else None,
        "cpu_limit_rps_with_client": round(limit_with_client, 2) if limit_with_client else None,
        "best_throughput_rps": best_rps,
        "best_clients": best["clients"],
        "best_busy_cores": best["busy_cores"],
        "sustained_share": round(best_rps / limit, 4) if limit else None,
        "sustained_share_with_client": round(best_rps / limit_with_client, 4) if limit_with_client else None,
        "cpu_limit_rps_at_best": round(limit_at_best, 2) if limit_at_best else None,
        "sustained_share_at_best": round(best_rps / limit_at_best, 4) if limit_at_best else None,
        "goal_share": GOAL_SHARE,
        "met": bool(limit) and best_rps / limit >= GOAL_SHARE,  # type: ignore[operator]
        "where_the_time_goes": {
            "clients": 1,
            "p50_ms": round(p50, 2),
            "mean_ms": round(mean, 2),
            "server_cpu_ms": per["server"],
            "postgres_cpu_ms": per["postgres"],
            "client_cpu_ms": client,
            # Means per request from the server's histograms: its whole answer (middleware to response headers),
            # the search in it, and the query embedding and database time in the search (they overlap: the
            # keyword half runs while the query is embedded).
            "server_mean_ms": timings,
            "outside_server_mean_ms": round(mean - timings["http_ms"], 3) if timings and timings["http_ms"] else None,
        },
    }


async def _compare(
    probes: dict[str, Probe], key: str, queries: list[str], *, clients: int, seconds: float, rounds: int
) -> tuple[dict[str, object], Run]:
    """One client count against the server, and the baseline taking turns with it when there is one.

    Returns the figures and the server's runs merged."""
    if "baseline" not in probes:
        run = await _measured(probes["server"], key, queries, clients=clients, seconds=seconds)
        return run.summary(), run
    totals = {name: Run(clients=clients) for name in probes}
    ratios = []
    for i in range(rounds):
        this_round = {}
        # Alternate who goes first, so that neither always runs right after the other.
        for name in probes if i % 2 == 0 else reversed(probes):
            this_round[name] = await _measured(probes[name], key, queries, clients=clients, seconds=seconds / rounds)
            totals[name].add(this_round[name])
        ratios.append(round(this_round["server"].throughput / this_round["baseline"].throughput, 4))
    return {
        **totals["server"].summary(),
        "baseline": totals["baseline"].summary(),
        "throughput_ratio": round(totals["server"].throughput / totals["baseline"].throughput, 4),
        "median_round_ratio": round(statistics.median(ratios), 4),
        "round_ratios": ratios,
    }, totals["server"]


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--chunks", type=int, default=10_000, help="synthetic chunks in the KB (default 10000)")
    p.add_argument("--clients", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8, 32])
    p.add_argument("--seconds", type=float, default=20.0, help="length of each run (default 20)")
    p.add_argument("--corpus", type=Path, default=SCIFACT / "corpus.jsonl")
    p.add_argument("--queries-file", type=Path, default=SCIFACT / "queries.jsonl")
    p.add_argument(
        "--baseline-env",
        type=_setting,
        action="append",
        default=[],
        metavar="MEMEX_NAME=VALUE",
        help="run a baseline server with this setting changed, taking turns with the server (repeatable)",
    )
    p.add_argument("--rounds", type=int, default=3, help="turns each server takes per client count (default 3)")
    args = p.parse_args(argv)
    args.baseline_env = dict(args.baseline_env)
    return args


def _setting(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.startswith("MEMEX_"):
        raise argparse.ArgumentTypeError(f"{text!r}: write MEMEX_NAME=VALUE")
    return name, value


if __name__ == "__main__":
    emit(asyncio.run(main(parse_args(sys.argv[1:]))))
