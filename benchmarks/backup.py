"""Backup create and verify times, and archive size, against a plain `pg_dump -Fc` of the same database.

    python benchmarks/backup.py [--chunks 100000] [--rounds 2] [--encrypted]

The store is the synthetic one of search_latency.py (real-model vectors mixed with noise, text from SciFact),
loaded with COPY. Each round runs a plain `pg_dump -Fc` to a file and `backup.create.create` (dump, checksums,
manifest, sample searches, optional encryption) back to back on the same database; the ratio is of their
fastest rounds (goal: create ≤ 1.2 × pg_dump). `verify` (restore into a scratch Postgres, indexes included,
then the checks) runs once, beside a plain `pg_restore` of the plain dump into a second scratch server.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from pathlib import Path

import psycopg
from harness import emit, log, scratch_database
from search_latency import corpus_material, fill_store

from memex.backup import create, pgtools, store, verify
from memex.backup.scratch import scratch_server
from memex.db.engine import libpq_url
from memex.settings import Settings


def plain_dump(tools: pgtools.Tools, url: str, out: str) -> float:
    target = pgtools.target(url)
    started = time.perf_counter()
    subprocess.run(
        [tools.path("pg_dump"), "--format=custom", f"--file={out}", f"--dbname={target.conninfo}"],
        check=True,
        env=target.env,
    )
    return time.perf_counter() - started


def plain_restore(tools: pgtools.Tools, dump: str) -> float:
    with scratch_server() as url:
        target = pgtools.target(url)
        started = time.perf_counter()
        subprocess.run(
            [tools.path("pg_restore"), "--no-owner", "--exit-on-error", f"--dbname={target.conninfo}", dump],
            check=True,
            env={**target.env, "PGOPTIONS": "-c maintenance_work_mem=512MB"},
        )
        return time.perf_counter() - started


async def main(args: argparse.Namespace) -> dict[str, object]:
    sentences, words = corpus_material(args.corpus, min(3000, max(200, args.chunks // 30)))
    with scratch_database(keep=args.keep_db) as scratch:
        from harness import bench_runtime

        runtime = await bench_runtime(scratch)
        try:
            _, _, reused = await fill_store(runtime, chunks=args.chunks, sentences=sentences, words=words)
            settings: Settings = runtime.settings
            if args.encrypted:
                from pydantic import SecretStr

                settings = settings.model_copy(update={"backup_key": SecretStr("benchmark passphrase")})
            with psycopg.connect(libpq_url(runtime.database_url)) as conn:
                number = store.server_version_num(conn)
            tools = pgtools.find_tools(
                pgtools.major_of(number), pgtools.describe(number), configured=None, embedded=settings.embedded
            )
            embedder = await runtime.load_embedder()
            plain_path = str(scratch.work_dir / "plain.dump")
            dumps, creates = [], []
            created = None
            for round_ in range(args.rounds):
                dumps.append(await asyncio.to_thread(plain_dump, tools, runtime.database_url, plain_path))
                started = time.perf_counter()
                created = await create.create(
                    settings, url=runtime.database_url, out_dir=scratch.work_dir / "backups", embedder=embedder
                )
                creates.append(time.perf_counter() - started)
                log(f"round {round_ + 1}: pg_dump {dumps[-1]:.2f} s, backup create {creates[-1]:.2f} s")
                if round_ < args.rounds - 1:
                    created.path.unlink()
            assert created is not None
            plain_bytes = (scratch.work_dir / "plain.dump").stat().st_size
            started = time.perf_counter()
            checked = await verify.verify(settings, created.path, embedder=embedder)
            verify_seconds = time.perf_counter() - started
            assert checked.ok, checked.as_dict()
            log(f"backup verify {verify_seconds:.2f} s: {[c.name for c in checked.checks]}")
            restore_seconds = await asyncio.to_thread(plain_restore, tools, plain_path)
            log(f"plain pg_restore into a scratch server {restore_seconds:.2f} s")
        finally:
            await runtime.close()
    return {
        "chunks": args.chunks,
        "synthetic": True,
        "encrypted": args.encrypted,
        "rounds": args.rounds,
        "create_seconds": round(min(creates), 3),
        "pg_dump_seconds": round(min(dumps), 3),
        "create_over_pg_dump": round(min(creates) / min(dumps), 3),
        "archive_bytes": created.size,
        "pg_dump_bytes": plain_bytes,
        "size_ratio": round(created.size / plain_bytes, 4),
        "samples": created.samples,
        "verify_seconds": round(verify_seconds, 3),
        "pg_restore_seconds": round(restore_seconds, 3),
        "reused_index": reused,
        "verify_over_pg_restore": round(verify_seconds / restore_seconds, 3),
        "all_create_seconds": [round(x, 3) for x in creates],
        "all_pg_dump_seconds": [round(x, 3) for x in dumps],
    }


def parse_args(argv: list[str]) -> argparse.Namespace:
    from harness import SCIFACT

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--chunks", type=int, default=100_000, help="synthetic chunks to load (default 100000)")
    p.add_argument("--rounds", type=int, default=2, help="pg_dump / create pairs to time (default 2)")
    p.add_argument(
        "--keep-db",
        type=Path,
        default=None,
        help="keep the embedded database in this (short) folder and reuse its synthetic store on later runs",
    )
    p.add_argument("--encrypted", action="store_true", help="encrypt the archive (MEMEX_BACKUP_KEY)")
    p.add_argument("--corpus", default=SCIFACT / "corpus.jsonl", help="BEIR corpus.jsonl for sentences and words")
    return p.parse_args(argv)


if __name__ == "__main__":
    emit(asyncio.run(main(parse_args(sys.argv[1:]))))
