"""Indexing files into a knowledge base: parse → chunk → embed → store, pipelined so embedding never waits.

Parsing runs in the parsing sandbox (separate processes, see `sandbox.py`), embedding in a thread (it uses
every core), storing on the event loop; each document is written in its own transaction, so a crash leaves it
either fully old or fully new.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from memex.documents import store as documents
from memex.embeddings import store as embedding_store
from memex.embeddings.base import Embedder
from memex.errors import MemexError
from memex.ingest.prepare import Prepared
from memex.ingest.scan import Failure
from memex.metrics import Metrics

# Chunks gathered before one embedding call. The embedder sorts a call's texts by length before batching,
# so a wide window wastes little on padding; it stays small enough that documents land steadily.
EMBED_BATCH_CHUNKS = 256


@dataclass(frozen=True, slots=True)
class WorkItem:
    """One file to (re)index: its bytes come from `load` so they are read only when needed."""

    source_path: str
    name: str
    load: Callable[[], tuple[bytes, str]]
    modified_at: datetime | None = None
    outcome: str = "added"


@dataclass
class Outcomes:
    """What happened to each file, for the summary."""

    done: dict[str, list[str]] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    chunks: int = 0

    def add(self, outcome: str, path: str) -> None:
        self.done.setdefault(outcome, []).append(path)


@dataclass(slots=True)
class _Ready:
    item: WorkItem
    data: bytes
    sha256: str
    prepared: Prepared
    seconds: float  # spent on this document so far: reading and parsing, then its share of the embedding


ProgressFn = Callable[[str, str], None]
# Reads a file's bytes into chunks: `ParsePool.prepare`, so that every file is read in the sandbox.
PrepareFn = Callable[[bytes, str], Awaitable[Prepared]]


async def run(
    *,
    engine: AsyncEngine,
    embedder: Embedder,
    generation: int | None,
    prepare: PrepareFn,
    kb_id: uuid.UUID,
    items: Sequence[WorkItem],
    outcomes: Outcomes,
    metrics: Metrics,
    on_progress: ProgressFn | None = None,
) -> None:
    """Index `items` into the KB, recording each file's outcome; a failing file never stops the others."""
    ready: asyncio.Queue[_Ready | None] = asyncio.Queue(maxsize=EMBED_BATCH_CHUNKS)

    def report(outcome: str, path: str) -> None:
        if on_progress:
            on_progress(outcome, path)

    def fail(path: str, reason: str) -> None:
        outcomes.failures.append(Failure(path=path, reason=reason))
        metrics.document_ingested("failed")
        report("failed", path)

    async def produce() -> None:
        try:
            for item in items:
                started = time.perf_counter()
                try:
                    data, sha = await asyncio.to_thread(item.load)
                    prepared = await prepare(data, item.name)
                except FileNotFoundError:
                    fail(item.source_path, "file disappeared before it could be read")
                    continue
                except OSError as exc:
                    fail(item.source_path, f"cannot read: {exc.strerror or exc}")
                    continue
                except MemexError as exc:
                    fail(item.source_path, exc.message)
                    continue
                seconds = time.perf_counter() - started
                await ready.put(_Ready(item=item, data=data, sha256=sha, prepared=prepared, seconds=seconds))
        finally:
            await ready.put(None)

    async def store(batch: list[_Ready], vectors_per_doc: list[object]) -> None:
        for entry, vectors in zip(batch, vectors_per_doc, strict=True):
            started = time.perf_counter()
            try:
                await _store_one(engine=engine, kb_id=kb_id, entry=entry, vectors=vectors, generation=generation)
            except MemexError as exc:
                fail(entry.item.source_path, exc.message)
                continue
            chunks = entry.prepared.chunks
            seconds = entry.seconds + time.perf_counter() - started
            metrics.document_ingested(
                "indexed", seconds=seconds, chunks=len(chunks), tokens=sum(c.token_count for c in chunks)
            )
            outcomes.chunks += len(entry.prepared.chunks)
            outcomes.add(entry.item.outcome, entry.item.source_path)
            report(entry.item.outcome, entry.item.source_path)

    producer = asyncio.create_task(produce())
    pending_store: asyncio.Task[None] | None = None
    try:
        more = True
        while more:
            first = await ready.get()
            if first is None:
                break
            batch = [first]
            size = len(first.prepared.chunks)
            # Take whatever else is ready, but never wait for it: an idle model is the one thing we cannot afford.
            while size < EMBED_BATCH_CHUNKS and not ready.empty():
                entry = ready.get_nowait()
                if entry is None:
                    more = False
                    break
                batch.append(entry)
                size += len(entry.prepared.chunks)
            texts = [c.embed_text for e in batch for c in e.prepared.chunks]
            started = time.perf_counter()
            vectors = await asyncio.to_thread(embedder.embed_documents, texts)
            per_chunk = (time.perf_counter() - started) / max(size, 1)
            per_doc: list[object] = []
            offset = 0
            for e in batch:
                per_doc.append(vectors[offset : offset + len(e.prepared.chunks)])
                offset += len(e.prepared.chunks)
                e.seconds += per_chunk * len(e.prepared.chunks)
            if pending_store is not None:
                await pending_store
            pending_store = asyncio.create_task(store(batch, per_doc))
        if pending_store is not None:
            await pending_store
        await producer
    finally:
        if not producer.done():
            producer.cancel()


async def _store_one(
    *, engine: AsyncEngine, kb_id: uuid.UUID, entry: _Ready, vectors: object, generation: int | None
) -> None:
    prepared = entry.prepared
    async with engine.begin() as conn:
        if generation is not None:
            # First, before any row is written: the lock it takes orders this writer with a model swap.
            await embedding_store.check_generation(conn, generation)
        await documents.put_blob(conn, sha256=entry.sha256, data=entry.data)
        document_id = await documents.upsert_document(
            conn,
            kb_id=kb_id,
            source_path=entry.item.source_path,
            title=prepared.parsed.title,
            mime=prepared.mime,
            file_type=prepared.file_type,
            sha256=entry.sha256,
            size=len(entry.data),
            status="indexing",
            modified_at=entry.item.modified_at,
            metadata=json.dumps(prepared.parsed.metadata, default=str),
        )
        await documents.replace_chunks(
            conn,
            document_id=document_id,
            kb_id=kb_id,
            chunks=prepared.chunks,
            vectors=vectors,  # type: ignore[arg-type]
            generation=generation,
        )
