"""`backup verify`: restore an archive into a scratch Postgres and check it against its manifest.

Checks, in order: the archive reads whole (every segment's checksum or authentication, the key, the dump's
sha256), pg_restore loads it, every table has the manifest's row count, every original file still hashes to
its name, an older schema migrates to this Memex's, and the sample searches find the same top results.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from memex.backup import load, pgtools, retention, samples, store
from memex.backup.archive import read_header
from memex.backup.models import Check, NoProgress, Progress, Verification
from memex.backup.scratch import scratch_server
from memex.db import migrate
from memex.embeddings import spec
from memex.embeddings.base import Embedder
from memex.errors import BackupError
from memex.settings import Settings


async def verify(
    settings: Settings,
    path: Path,
    *,
    embedder: Embedder | None = None,
    progress: Progress | None = None,
) -> Verification:
    """Verify the archive at `path`; the result lists each check, and says why it failed if it did."""
    progress = progress or NoProgress()
    started = time.perf_counter()
    result = Verification(path=path)
    try:
        with open(path, "rb") as f:
            result.backup_id = read_header(f).fields.get("backup_id")
    except OSError as exc:
        result.checks.append(Check("archive", False, f"cannot read {path}: {exc.strerror or exc}"))
        return result
    except BackupError as exc:
        result.checks.append(Check("archive", False, exc.message))
        return result
    secret = settings.backup_key.get_secret_value() if settings.backup_key else None
    try:
        with scratch_server() as url:
            manifest = await asyncio.to_thread(_restore, path, url, secret, progress, result)
            if manifest is not None:
                await asyncio.to_thread(_check_data, url, manifest, result)
                await _check_searches(settings, url, manifest, embedder, result)
    except BackupError as exc:
        result.checks.append(Check("scratch", False, exc.message))
    result.seconds = time.perf_counter() - started
    if result.ok:
        await asyncio.to_thread(retention.mark_verified, path, at=datetime.now(UTC))
    return result


def _restore(
    path: Path, url: str, secret: str | None, progress: Progress, result: Verification
) -> dict[str, Any] | None:
    tools = pgtools.Tools(bin_dir=pgtools.embedded_bin_dir(), version="", major=0)
    try:
        manifest = load.load(path, url=url, tools=tools, passphrase=secret, replace=False, progress=progress)
    except BackupError as exc:
        name = "restore" if exc.message.startswith("the restore failed") else "archive"
        result.checks.append(Check(name, False, exc.message))
        return None
    dump = manifest["members"]["database.dump"]
    result.checks.append(
        Check(
            "archive",
            True,
            f"every segment and the dump's sha256 ({dump['sha256'][:16]}…, {dump['bytes']} bytes) check out",
        )
    )
    result.checks.append(Check("restore", True, "pg_restore loaded the dump into a scratch Postgres"))
    return manifest


def _check_data(url: str, manifest: dict[str, Any], result: Verification) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        counts = store.row_counts(conn)
        expected: dict[str, int] = manifest.get("tables", {})
        wrong = [
            f"{name}: {counts.get(name, 'missing')} restored, {rows} in the manifest"
            for name, rows in sorted(expected.items())
            if counts.get(name) != rows
        ]
        wrong += [f"{name}: not in the manifest" for name in sorted(set(counts) - set(expected))]
        total = sum(expected.values())
        result.checks.append(
            Check(
                "row counts", not wrong, "; ".join(wrong) or f"{len(expected)} tables, {total} rows, as in the manifest"
            )
        )
        damaged = store.damaged_blobs(conn)
        result.checks.append(
            Check(
                "original files",
                not damaged,
                f"original files whose bytes do not match their sha256: {', '.join(damaged)}"
                if damaged
                else f"{counts.get('blobs', 0)} original files match their sha256",
            )
        )
    revision, head = manifest.get("schema_revision"), migrate.head_revision()
    if revision != head:
        try:
            migrate.upgrade(url)
            result.checks.append(Check("migration", True, f"schema revision {revision} migrates to {head}"))
        except Exception as exc:  # alembic and SQLAlchemy raise many kinds; any is a failed check here
            reason = (
                str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
                if str(exc).strip()
                else type(exc).__name__
            )
            result.checks.append(
                Check("migration", False, f"schema revision {revision} does not migrate to {head}: {reason}")
            )


async def _check_searches(
    settings: Settings, url: str, manifest: dict[str, Any], embedder: Embedder | None, result: Verification
) -> None:
    recorded: list[dict[str, Any]] = manifest.get("samples") or []
    if not recorded or not all(c.ok for c in result.checks):
        if not recorded:
            result.checks.append(Check("searches", True, "the archive holds no sample searches (no indexed documents)"))
        return
    same_model = spec.same_model(manifest.get("embedding_model"), settings)
    async with samples.search_runtime(settings, url, embedder=embedder) as runtime:
        problems, skipped = await samples.check(runtime, recorded, hybrid=same_model)
    ran = len(recorded) - skipped
    note = f" ({skipped} hybrid searches skipped: another embedding model is configured)" if skipped else ""
    result.checks.append(
        Check("searches", not problems, "; ".join(problems) or f"{ran} sample searches find the same top results{note}")
    )
