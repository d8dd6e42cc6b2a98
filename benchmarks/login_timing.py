"""Whether a login attempt for an unknown email answers as slowly as one for a real user (no account probing).

    python benchmarks/login_timing.py [--rounds 15]

`POST /api/auth/login` with a wrong password runs through the real app (in-process, httpx's ASGI transport)
on a scratch database, alternating a real user's email and unknown ones; the baseline is the real user's
attempts measured in the same run. An unknown email is checked against a dummy argon2 hash, so the ratio of
their medians should be about 1 (goal ≥ 0.5; an unknown email that skipped the hash would be near 0.01).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import httpx
from harness import bench_runtime, emit, log, percentile, scratch_database

from memex.accounts import passwords, service
from memex.api.app import create_app
from memex.cli.main import quiet_logging

EMAIL = "bench-user@example.com"
PASSWORD = "correct horse battery staple"


async def run(rounds: int) -> dict[str, object]:
    with scratch_database() as scratch:
        # Every attempt fails on purpose: neither the address limit nor the per-account wait may answer first.
        runtime = await bench_runtime(scratch, rate_limit_login="0", login_max_attempts=10_000)
        quiet_logging(runtime.settings)  # not two log lines per attempt
        try:
            async with runtime.engine.begin() as conn:
                await service.add_user(conn, email=EMAIL, password_hash=passwords.hash_password(PASSWORD))
            app = create_app(runtime.settings, runtime=runtime)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://memex.bench") as client:

                async def attempt(email: str) -> float:
                    started = time.perf_counter()
                    response = await client.post("/api/auth/login", json={"email": email, "password": "wrong"})
                    elapsed = (time.perf_counter() - started) * 1000
                    assert response.status_code == 401, response.text
                    return elapsed

                await attempt(EMAIL)  # warm-up: the first request builds the app's routes and the dummy hash
                await attempt("warm-up@example.com")
                known, unknown = [], []
                for n in range(rounds):
                    known.append(await attempt(EMAIL))
                    unknown.append(await attempt(f"nobody-{n}@example.com"))
        finally:
            await runtime.close()
    ratio = statistics.median(unknown) / statistics.median(known)
    log(f"known p50 {statistics.median(known):.1f} ms, unknown p50 {statistics.median(unknown):.1f} ms")
    return {
        "benchmark": "login_timing",
        "rounds": rounds,
        "known_p50_ms": round(statistics.median(known), 2),
        "known_p95_ms": round(percentile(known, 95), 2),
        "unknown_p50_ms": round(statistics.median(unknown), 2),
        "unknown_p95_ms": round(percentile(unknown, 95), 2),
        "ratio_unknown_to_known": round(ratio, 3),
        "goal": "ratio >= 0.5",
        "goal_met": ratio >= 0.5,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=15, help="attempts of each kind (default 15)")
    args = p.parse_args()
    emit(asyncio.run(run(args.rounds)))


if __name__ == "__main__":
    main()
