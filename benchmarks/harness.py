"""What every benchmark shares: a scratch database, a runtime on it, progress on stderr, the JSON result on stdout."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from memex.db.engine import libpq_url
from memex.runtime import Runtime, open_runtime
from memex.settings import Settings

_STARTED = time.perf_counter()
_ROOT = Path(__file__).resolve().parent.parent
# The code an index is made by: parsing, chunking, embedding, writing chunks, and the schema (triggers, indexes).
INDEX_CODE = (
    "src/memex/ingest",
    "src/memex/embeddings",
    "src/memex/documents/store.py",
    "src/memex/db/tables.py",
    "src/memex/db/migrations",
)


def code_stamp(*paths: str, settings: Settings, extra: str = "") -> str:
    """A hash of the source files under `paths` (from the repository root), the index settings and `extra`.

    A kept index (--keep-db) is reused only while its stamp matches: an index made by other code or settings
    would measure that code, not this one.
    """
    h = hashlib.sha256()
    for path in paths:
        full = _ROOT / path
        for file in sorted(full.rglob("*.py")) if full.is_dir() else [full]:
            h.update(str(file.relative_to(_ROOT)).encode() + b"\0" + file.read_bytes() + b"\1")
    s = settings
    h.update(
        f"{s.embedding_provider}|{s.embedding_model}|{s.embedding_dimension}|{s.chunk_tokens}|"
        f"{s.chunk_overlap_tokens}|{extra}".encode()
    )
    return h.hexdigest()[:16]


def log(message: str) -> None:
    """Human-readable progress, on stderr so stdout stays one JSON line."""
    print(f"[{time.perf_counter() - _STARTED:7.1f}s] {message}", file=sys.stderr, flush=True)


def emit(result: dict[str, object]) -> None:
    """The benchmark's result: one JSON object, the last line on stdout."""
    print(json.dumps(result), flush=True)


@dataclass(frozen=True)
class Scratch:
    """A database for one benchmark run and a folder for its files."""

    url: str
    work_dir: Path
    reused: bool


@contextlib.contextmanager
def scratch_database(*, keep: Path | None = None) -> Iterator[Scratch]:
    """A fresh database: a new one on MEMEX_DATABASE_URL's server, else an embedded Postgres in a temp folder.

    With `keep`, the database outlives the run so a later run can reuse what it holds: an embedded
    Postgres in that folder, or MEMEX_DATABASE_URL's database itself, used as it is.
    """
    work_dir = Path(tempfile.mkdtemp(prefix="mxb-", dir="/tmp"))  # short: Postgres' socket path is limited
    external = os.environ.get("MEMEX_DATABASE_URL") or None
    try:
        if external and keep is not None:
            yield Scratch(url=libpq_url(external), work_dir=work_dir, reused=True)
        elif external:
            with _scratch_on_server(libpq_url(external)) as url:
                yield Scratch(url=url, work_dir=work_dir, reused=False)
        else:
            yield from _embedded(keep, work_dir)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


def _embedded(keep: Path | None, work_dir: Path) -> Iterator[Scratch]:
    from memex.db.embedded import EmbeddedPostgres

    data_dir = keep.absolute() if keep is not None else work_dir / "db"
    reused = (data_dir / "pg").exists()
    log(f"starting embedded Postgres in {data_dir}" + (" (reusing it)" if reused else ""))
    server = EmbeddedPostgres(data_dir)
    server.ensure_database()
    try:
        yield Scratch(url=server.url(), work_dir=work_dir, reused=reused)
    finally:
        if keep is None:
            server._server.cleanup()


@contextlib.contextmanager
def _scratch_on_server(server_url: str) -> Iterator[str]:
    name = f"memex_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    log(f"created scratch database {name}")
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


async def bench_runtime(scratch: Scratch, **overrides: object) -> Runtime:
    """A runtime on the scratch database; other MEMEX_* variables (chunk size, ef_search...) still apply."""
    settings = Settings(database_url=scratch.url, data_dir=scratch.work_dir / "data", **overrides)  # type: ignore[arg-type]
    runtime = await open_runtime(settings)
    log(
        f"settings: model={settings.embedding_model} chunk_tokens={settings.chunk_tokens} "
        f"overlap={settings.chunk_overlap_tokens} hnsw_ef_search={settings.hnsw_ef_search}"
    )
    return runtime


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation, as numpy's default."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


SCIFACT = Path("/work/shared/datasets/beir/scifact")


def read_corpus(path: Path, limit: int | None = None) -> list[dict[str, str]]:
    """BEIR corpus.jsonl rows ({_id, title, text}), in file order."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                rows.append({"_id": str(row["_id"]), "title": row.get("title") or "", "text": row.get("text") or ""})
                if limit is not None and len(rows) >= limit:
                    break
    return rows
