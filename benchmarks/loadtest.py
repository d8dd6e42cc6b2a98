"""`memex loadtest` scenarios against a real `memex serve` over a synthetic store of a given size.

    python benchmarks/loadtest.py [--chunks 50000] [--scenario steady --scenario peak] [--duration 60]

The store is the one search_load.py serves (real sentences and their embeddings mixed with noise, see
search_latency.py); `memex serve --no-worker` serves it with its rate limits lifted and its query cache off,
and `memex loadtest --json` runs each scenario against it. Prints the loadtest reports and the store's size.
The search queries are loadtest's own (short keywords and long questions), not SciFact's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
from pathlib import Path

from harness import SCIFACT, emit, log, scratch_database
from search_latency import corpus_material
from served import free_port, server_env, synthetic_store, wait_ready


async def main(args: argparse.Namespace) -> dict[str, object]:
    sentences, words = corpus_material(args.corpus, min(1000, max(200, args.chunks // 20)))
    with scratch_database() as scratch:
        env = server_env(scratch, MEMEX_QUERY_CACHE_SIZE="0", MEMEX_RATE_LIMIT_SEARCH="0", MEMEX_RATE_LIMIT_CHAT="0")
        key = await synthetic_store(scratch, env, sentences=sentences, words=words, chunks=args.chunks, kb_prefix="lt")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [sys.executable, "-m", "memex", "serve", "--no-worker", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            await wait_ready(url, server)
            command = [sys.executable, "-m", "memex", "loadtest", url, "--api-key", key, "--json"]
            command += ["--duration", str(args.duration), "--max-error-rate", "1"]
            for name in args.scenario or ["steady", "peak"]:
                command += ["--scenario", name]
            log(f"running memex loadtest {url} {' '.join(command[7:])}")
            done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
            if done.returncode != 0:
                raise SystemExit(f"memex loadtest failed: {done.stderr[-2000:]}")
            reports = json.loads(done.stdout.splitlines()[-1])["scenarios"]
        finally:
            server.terminate()
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    for r in reports:
        log(f"{r['scenario']}: {r['successes']}/{r['requests']} ok, latency {r['latency_ms']}")
    return {"chunks": args.chunks, "synthetic": True, "query_cache": False, "scenarios": reports}


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--chunks", type=int, default=50_000, help="synthetic chunks in the store (default 50000)")
    p.add_argument("--scenario", action="append", help="loadtest scenario (repeatable; default steady and peak)")
    p.add_argument("--duration", type=float, default=60.0, help="seconds per scenario (default 60)")
    p.add_argument("--corpus", type=Path, default=SCIFACT / "corpus.jsonl")
    return p.parse_args(argv)


if __name__ == "__main__":
    emit(asyncio.run(main(parse_args(sys.argv[1:]))))
