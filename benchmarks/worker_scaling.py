"""Documents/s of the job queue with 1, 2, 4... `memex worker` processes (`python benchmarks/ingest.py --workers 1,2,4`).

Embeddings come from the OpenAI-compatible double (tests/doubles), which answers at once, so only Memex's own
work counts: the job queue, reading the file in the parsing sandbox, chunking, and the chunk writes with their
BM25 statistics. Each count of workers runs twice, with the documents in one KB and spread over four KBs:
every chunk write updates its KB's statistics row, so writers of one KB take turns on that row, and the
difference between the two layouts is what that costs.

Every poll also samples the workers' database sessions: the share of active ones that wait for a lock is how
much the writers queue behind each other. A round queues every upload first, then starts the workers and times from the first document a worker takes
to the last one indexed, so process start-up is not in the figure. The baseline is one worker on one KB,
measured in the same run.
"""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import sqlalchemy as sa
from harness import Scratch, bench_runtime, log
from sample_files import documents, to_md

from memex.cli.main import quiet_logging
from memex.documents import service
from memex.documents.service import Upload
from memex.kbs import store as kbs
from memex.kbs.access import Actor
from memex.runtime import Runtime

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.doubles.openai_server import OpenAIDouble

MODEL = "instant-double"
DIMENSION = 384  # the schema's own: the double answers in any size


async def run(scratch: Scratch, *, corpus: Path, docs: int, workers: list[int], concurrency: int) -> dict[str, object]:
    double = OpenAIDouble()
    double.dimension = DIMENSION
    double.start()
    overrides = {
        "embedding_provider": "openai",
        "embedding_base_url": double.base_url,
        "embedding_model": MODEL,
        "embedding_dimension": DIMENSION,
    }
    runtime = await bench_runtime(scratch, **overrides)
    quiet_logging(runtime.settings)  # not one line per upload on stderr
    texts = [to_md(doc) for _, doc in documents(corpus, docs)]
    log(f"{docs} Markdown documents, {sum(map(len, texts)) / 1e6:.1f} MB; workers {workers}, concurrency {concurrency}")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MEMEX_")},
        "MEMEX_DATABASE_URL": scratch.url,
        "MEMEX_DATA_DIR": str(scratch.work_dir / "data"),
        "MEMEX_EMBEDDING_PROVIDER": "openai",
        "MEMEX_EMBEDDING_BASE_URL": double.base_url,
        "MEMEX_EMBEDDING_MODEL": MODEL,
        "MEMEX_EMBEDDING_DIMENSION": str(DIMENSION),
        "MEMEX_LOG_LEVEL": "WARNING",
    }
    rounds: list[dict[str, object]] = []
    try:
        for count in workers:
            for kb_count in (1, 4):
                rate, chunks, locked = await _round(
                    runtime, env, texts, workers=count, kbs_used=kb_count, concurrency=concurrency
                )
                rounds.append(
                    {
                        "workers": count,
                        "kbs": kb_count,
                        "docs_per_s": round(rate, 2),
                        "chunks": chunks,
                        "active_sessions_waiting_for_a_lock": locked,
                    }
                )
                log(
                    f"{count} worker(s), {kb_count} KB(s): {rate:.1f} documents/s; {locked:.1%} of active sessions waited for a lock"
                )
    finally:
        await runtime.close()
        double.stop()
    base = next(r["docs_per_s"] for r in rounds if r["workers"] == workers[0] and r["kbs"] == 1)
    for r in rounds:
        r["ratio_to_one_worker_one_kb"] = round(float(r["docs_per_s"]) / float(base), 3)  # type: ignore[arg-type]
    return {
        "docs": docs,
        "cpu_cores": os.cpu_count(),
        "worker_concurrency": concurrency,
        "embeddings": "instant double",
        "rounds": rounds,
    }


async def _round(
    runtime: Runtime, env: dict[str, str], texts: list[bytes], *, workers: int, kbs_used: int, concurrency: int
) -> tuple[float, int, float]:
    tag = uuid.uuid4().hex[:6]
    async with runtime.engine.begin() as conn:
        kb_ids = [
            (await kbs.create(conn, name=f"w{workers}-k{kbs_used}-{i}-{tag}", owner_id=None)).id
            for i in range(kbs_used)
        ]
    for i, kb_id in enumerate(kb_ids):
        mine = [(f"doc{n}-{tag}.md", text) for n, text in enumerate(texts) if n % kbs_used == i]

        async def receive(files: list[tuple[str, bytes]] = mine) -> list[Upload]:
            return [Upload(name=name, data=data) for name, data in files]

        await service.upload(runtime, Actor.system(), kb_id=kb_id, receive=receive)
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "memex", "worker", "--concurrency", str(concurrency)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for _ in range(workers)
    ]
    try:
        samples = _Samples()
        started = await _wait(runtime, kb_ids, lambda queued, done: queued < len(texts), timeout=120, samples=samples)
        samples = _Samples()  # only while they work
        finished = await _wait(runtime, kb_ids, lambda queued, done: done == len(texts), timeout=900, samples=samples)
    finally:
        for p in processes:
            p.send_signal(signal.SIGTERM)
        for p in processes:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
    async with runtime.engine.connect() as conn:
        failed, chunks = (
            await conn.execute(
                sa.text(
                    "SELECT count(*) FILTER (WHERE status = 'failed'), coalesce(sum(chunk_count), 0) FROM documents "
                    "WHERE kb_id = ANY(:ids)"
                ),
                {"ids": kb_ids},
            )
        ).one()
    if failed:
        log(f"WARNING: {failed} documents failed")
    for what, n in samples.waits.most_common(3):
        log(f"  waited {n}x on {what}")
    return len(texts) / (finished - started), int(chunks), samples.share_waiting()


class _Samples:
    """What the workers' database sessions were doing, sampled with every poll: active, or waiting for a lock."""

    def __init__(self) -> None:
        self.active = 0
        self.waiting_for_lock = 0
        self.waits: collections.Counter[str] = collections.Counter()

    def share_waiting(self) -> float:
        return round(self.waiting_for_lock / max(self.active, 1), 4)


async def _wait(
    runtime: Runtime, kb_ids: list[uuid.UUID], condition: object, *, timeout: float, samples: _Samples
) -> float:
    """Poll the documents' states every 20 ms until `condition(queued, done)`; the time it became true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        async with runtime.engine.connect() as conn:
            queued, done = (
                await conn.execute(
                    sa.text(
                        "SELECT count(*) FILTER (WHERE status = 'queued'), "
                        "count(*) FILTER (WHERE status IN ('indexed', 'failed')) FROM documents WHERE kb_id = ANY(:ids)"
                    ),
                    {"ids": kb_ids},
                )
            ).one()
            active, locked = (
                await conn.execute(
                    sa.text(
                        "SELECT count(*) FILTER (WHERE state = 'active'), "
                        "count(*) FILTER (WHERE wait_event_type = 'Lock') FROM pg_stat_activity "
                        "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND query NOT LIKE '%LISTEN%'"
                    )
                )
            ).one()
            if locked:
                waits = await conn.execute(
                    sa.text(
                        "SELECT wait_event || ': ' || left(regexp_replace(query, '\\s+', ' ', 'g'), 70) FROM pg_stat_activity "
                        "WHERE wait_event_type = 'Lock' AND backend_type = 'client backend'"
                    )
                )
                samples.waits.update(waits.scalars())
        samples.active += active
        samples.waiting_for_lock += locked
        if condition(queued, done):  # type: ignore[operator]
            return time.perf_counter()
        await asyncio.sleep(0.02)
    raise TimeoutError(f"the workers did not get there within {timeout:.0f} s")
