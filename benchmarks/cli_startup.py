"""How long the CLI takes as a person meets it: `memex --help`, and `memex search` through a `memex serve` running
here and in-process, each beside the floor of the same run, an interpreter doing nothing (`python -c pass`).

    python benchmarks/cli_startup.py [--runs 7]

A scratch database gets this repository's README indexed; a `memex serve --no-worker` with authentication off (on
loopback) serves it. The commands run in turn, one after another, so a drift in the machine's speed hits all alike;
each figure is the median wall time of whole processes.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from harness import emit, log, scratch_database
from served import free_port, memex_cli, server_env

from memex.cli import local_server

README = Path(__file__).resolve().parent.parent / "README.md"
QUERY = "how do I rotate API keys"


def timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, env=env, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {done.stderr.decode(errors='replace')[-2000:]}")
    return seconds * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7, help="Runs of each command (after one warm-up each).")
    args = parser.parse_args()

    with scratch_database() as scratch:
        env = server_env(scratch, MEMEX_AUTH="false")
        log("indexing the README")
        memex_cli("index", str(README), "--kb", "docs", env=env)
        port = free_port()
        log(f"starting memex serve on port {port}")
        serve = subprocess.Popen(
            [sys.executable, "-m", "memex", "serve", "--port", str(port), "--no-worker"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            marker = scratch.work_dir / "data" / local_server.MARKER
            deadline = time.monotonic() + 180
            while not marker.exists():
                if serve.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("memex serve did not start")
                time.sleep(0.5)
            # Another data dir: no server to find there, so the search runs in-process on the same database.
            in_process = env | {"MEMEX_DATA_DIR": str(scratch.work_dir / "elsewhere")}
            memex = [sys.executable, "-m", "memex"]
            commands = {
                "floor": ([sys.executable, "-c", "pass"], env),
                "help": ([*memex, "--help"], env),
                "search_served": ([*memex, "search", QUERY], env),
                "search_in_process": ([*memex, "search", QUERY], in_process),
            }
            samples: dict[str, list[float]] = {name: [] for name in commands}
            for run in range(args.runs + 1):
                for name, (command, command_env) in commands.items():
                    ms = timed(command, command_env)
                    if run:  # the first round warms caches
                        samples[name].append(ms)
                log(f"round {run} done")
        finally:
            serve.terminate()
            serve.wait(timeout=60)

    medians = {name: statistics.median(values) for name, values in samples.items()}
    floor = medians["floor"]
    result: dict[str, object] = {"benchmark": "cli_startup", "runs": args.runs, "floor_ms": round(floor, 1)}
    for name in ("help", "search_served", "search_in_process"):
        result[f"{name}_ms"] = round(medians[name], 1)
        result[f"{name}_vs_floor"] = round(medians[name] / floor, 1)
    emit(result)


if __name__ == "__main__":
    main()
