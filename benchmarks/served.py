"""A real `memex serve` for the HTTP benchmarks: its environment, a user with an API key, and a synthetic store."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time

import httpx
from harness import Scratch, bench_runtime
from search_latency import load, synthetic_chunks
from sqlalchemy import text

from memex.kbs import store as kbs

BENCH_EMAIL = "bench@example.com"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def memex_cli(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, "-m", "memex", *args], capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"memex {' '.join(args)} failed: {done.stderr[-2000:]}")
    return done.stdout


async def wait_ready(base: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=base) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit("memex serve exited before it was ready")
            try:
                if (await client.get("/api/health")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.5)
    raise SystemExit("memex serve did not become ready")


def server_env(scratch: Scratch, **settings: str) -> dict[str, str]:
    """The environment of a server on the scratch database: no MEMEX_* of the caller's but the model cache."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMEX_")}
    env |= {"MEMEX_DATABASE_URL": scratch.url, "MEMEX_DATA_DIR": str(scratch.work_dir / "data")}
    env |= {"MEMEX_LOG_LEVEL": "WARNING"} | settings
    if "MEMEX_MODEL_CACHE_DIR" in os.environ:
        env["MEMEX_MODEL_CACHE_DIR"] = os.environ["MEMEX_MODEL_CACHE_DIR"]
    return env


async def synthetic_store(
    scratch: Scratch,
    env: dict[str, str],
    *,
    sentences: list[str],
    words: list[str],
    chunks: int,
    kb_prefix: str,
) -> str:
    """A user owning four KBs that hold `chunks` synthetic chunks between them; returns a read API key of theirs."""
    runtime = await bench_runtime(scratch)
    try:
        memex_cli("users", "create", "--email", BENCH_EMAIL, "--password", "bench-password-123", env=env)
        key = memex_cli("keys", "create", "--user", BENCH_EMAIL, "--scope", "read", env=env).strip().splitlines()[-1]
        async with runtime.engine.begin() as conn:
            user_id = (
                await conn.execute(text("SELECT id FROM users WHERE email = :email"), {"email": BENCH_EMAIL})
            ).scalar_one()
            kb_ids = [(await kbs.create(conn, name=f"{kb_prefix}-{i}", owner_id=user_id)).id for i in range(4)]
        embedder = await runtime.load_embedder()
        base = await asyncio.to_thread(embedder.embed_documents, sentences)
        vectors, texts = synthetic_chunks(base, sentences, words, chunks, seed=3)
        await asyncio.to_thread(load, runtime.database_url, kb_ids=kb_ids, vectors=vectors, texts=texts)
    finally:
        await runtime.close()
    return key
