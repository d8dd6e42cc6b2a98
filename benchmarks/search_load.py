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
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from harness import SCIFACT, emit, log, percentile, read_corpus, scratch_database
from search_latency import corpus_material
from served import free_port, server_env, synthetic_store, wait_ready


@dataclass
class Run:
    """What the clients saw in one run (or several runs of one server, merged)."""

    clients: int
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    wall: float = 0.0

    def add(self, other: Run) -> None:
        self.latencies += other.latencies
        self.wall += other.wall
        for status, n in other.errors.items():
            self.errors[status] = self.errors.get(status, 0) + n

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.wall

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
        }


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
        try:
            urls = {}
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
                log(f"{name} ready; warming up")
                await _run_clients(urls[name], key, queries, clients=2, seconds=3)
            runs = []
            for clients in args.clients:
                result = await _compare(urls, key, queries, clients=clients, seconds=args.seconds, rounds=args.rounds)
                log(f"{clients} clients: {result}")
                runs.append(result)
        finally:
            for proc in procs:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
    return {
        "chunks": args.chunks,
        "synthetic": True,
        "seconds_per_run": args.seconds,
        "query_cache": False,
        "baseline_env": args.baseline_env or None,
        "runs": runs,
    }


async def _compare(
    urls: dict[str, str], key: str, queries: list[str], *, clients: int, seconds: float, rounds: int
) -> dict[str, object]:
    """One client count against the server, and the baseline taking turns with it when there is one."""
    if "baseline" not in urls:
        return (await _run_clients(urls["server"], key, queries, clients=clients, seconds=seconds)).summary()
    totals = {name: Run(clients=clients) for name in urls}
    ratios = []
    for i in range(rounds):
        this_round = {}
        # Alternate who goes first, so that neither always runs right after the other.
        for name in urls if i % 2 == 0 else reversed(urls):
            this_round[name] = await _run_clients(urls[name], key, queries, clients=clients, seconds=seconds / rounds)
            totals[name].add(this_round[name])
        ratios.append(round(this_round["server"].throughput / this_round["baseline"].throughput, 4))
    return {
        **totals["server"].summary(),
        "baseline": totals["baseline"].summary(),
        "throughput_ratio": round(totals["server"].throughput / totals["baseline"].throughput, 4),
        "median_round_ratio": round(statistics.median(ratios), 4),
        "round_ratios": ratios,
    }


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
