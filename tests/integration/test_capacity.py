"""`memex capacity`: constants measured on a small store predict a real 10,000-chunk store within 20 %."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import psycopg
import pytest

from memex.capacity import constants
from memex.capacity.plan import GIN_PENDING_LIST_BYTES, estimate
from memex.capacity.store import StoreSizes, per_chunk, sizes, use_gin_pending_list
from memex.db.engine import libpq_url
from memex.documents import store as documents
from memex.ingest.folders import chunker_for
from memex.ingest.models import ParsedDocument, Section
from memex.kbs import store as kbs
from memex.runtime import Runtime

AVG_KB = 6
# A vocabulary with natural (Zipf) word frequencies, so that the full-text index grows as it does on prose.
_VOCABULARY = [f"{a}{b}" for a in ("ka", "lo", "mi", "ne", "po", "ru", "si", "ta", "ve", "zo") for b in range(400)]
_WEIGHTS = [1 / (rank + 1) for rank in range(len(_VOCABULARY))]


def text_of(rng: random.Random, n_bytes: int) -> str:
    paragraphs, size = [], 0
    while size < n_bytes:
        sentences = [
            " ".join(rng.choices(_VOCABULARY, _WEIGHTS, k=rng.randint(8, 20))).capitalize() + "." for _ in range(5)
        ]
        paragraph = " ".join(sentences)
        paragraphs.append(paragraph)
        size += len(paragraph) + 2
    return "\n\n".join(paragraphs)[:n_bytes]


async def fill(runtime: Runtime, kb_id: uuid.UUID, *, chunks: int, rng: random.Random) -> tuple[int, int]:
    """Add documents of about AVG_KB KB, through the stores ingestion writes with, until `chunks` chunks are in."""
    chunker = chunker_for(runtime)
    vectors = np.random.default_rng(rng.randint(0, 2**32))
    added_docs = added_chunks = 0
    async with runtime.engine.connect() as conn:
        have = (await sizes(conn)).chunks
    while have + added_chunks < chunks:
        body = text_of(rng, rng.randint(AVG_KB * 1024 // 2, AVG_KB * 1024 * 3 // 2))
        data = f"# Document {uuid.uuid4().hex}\n\n{body}".encode()
        parsed = ParsedDocument(title="Document", sections=(Section(text=body),))
        pieces = chunker.chunk(parsed)
        unit = vectors.normal(size=(len(pieces), runtime.settings.embedding_dimension)).astype(np.float32)
        unit /= np.linalg.norm(unit, axis=1, keepdims=True)
        sha = hashlib.sha256(data).hexdigest()
        async with runtime.engine.begin() as conn:
            doc_id = await documents.put_document(
                conn,
                kb_id=kb_id,
                source_path=f"docs/{sha[:12]}.md",
                title="Document",
                mime="text/markdown",
                file_type="md",
                sha256=sha,
                data=data,
                status="queued",
                modified_at=None,
            )
            await documents.replace_chunks(conn, document_id=doc_id, kb_id=kb_id, chunks=pieces, vectors=unit)
        added_docs += 1
        added_chunks += len(pieces)
    return added_docs, added_chunks


async def settled_sizes(runtime: Runtime) -> StoreSizes:
    # What autovacuum would have done by the time anyone measures a live store: pending GIN entries merged.
    with psycopg.connect(libpq_url(runtime.database_url), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE chunks, documents, blobs, kb_lexeme_stats, kb_chunk_stats")
    async with runtime.engine.connect() as conn:
        return await sizes(conn)


@pytest.mark.slow
async def test_prediction_from_a_small_store_matches_a_10k_chunk_store(runtime: Runtime, tmp_path: Path) -> None:
    rng = random.Random(7)
    async with runtime.engine.begin() as conn:
        kb_id = (await kbs.create(conn, name="capacity", owner_id=None)).id
        # Measured as benchmarks/capacity.py measures: the full-text index's own growth, without its pending list.
        await use_gin_pending_list(conn, enabled=False)

    await fill(runtime, kb_id, chunks=2_000, rng=rng)
    first = await settled_sizes(runtime)
    await fill(runtime, kb_id, chunks=4_000, rng=rng)
    small = await settled_sizes(runtime)
    measured = dataclasses.replace(
        constants.DEFAULTS,
        chunks_per_text_kb=small.chunks / (small.file_bytes / 1024),
        measured_on="the test's store at 2,000 and 4,000 chunks",
        **per_chunk(first, small),
    )
    data_dir = tmp_path / "data"
    constants.save(measured, data_dir)

    # The large store as it is used: new entries go through the pending list.
    async with runtime.engine.begin() as conn:
        await use_gin_pending_list(conn, enabled=True)
    await fill(runtime, kb_id, chunks=10_000, rng=rng)
    large = await settled_sizes(runtime)
    assert large.chunks >= 10_000
    avg_kb = large.file_bytes / 1024 / large.documents

    # What `memex capacity` predicts for the large store's documents, from the small store's constants.
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "memex",
            "capacity",
            "--json",
            "--documents",
            str(large.documents),
            "--avg-kb",
            str(avg_kb),
        ],
        capture_output=True,
        text=True,
        env={"MEMEX_DATA_DIR": str(data_dir), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["constants"]["source"] == str(data_dir / "capacity.json")
    predicted = {name: line["value"] for name, line in report["estimate"].items()}
    actual = {
        "chunks": large.chunks,
        "chunk_table_bytes": large.chunk_table,
        "hnsw_index_bytes": large.hnsw,
        "gin_index_bytes": large.gin,
        "blobs_bytes": large.blobs_total,
        "database_bytes": large.database,
    }
    # Within 20 %. GIN's file also holds the pages of its pending list, which the estimate adds whole: anywhere from
    # none (merged, and the pages reused by the index) to 4 MiB of them may be there, so GIN may be off by that too.
    slack = {name: 0.2 * value for name, value in actual.items()}
    slack["gin_index_bytes"] += GIN_PENDING_LIST_BYTES
    off = {name: round(predicted[name] / actual[name], 3) for name in actual}
    assert all(abs(predicted[name] - actual[name]) <= slack[name] for name in actual), (off, large)
    # The same arithmetic in process.
    plan = estimate(
        constants.load(data_dir), documents=large.documents, avg_kb=large.file_bytes / 1024 / large.documents
    )
    assert plan.value("database_bytes") == pytest.approx(predicted["database_bytes"])
