"""Indexing files into a knowledge base: parse → chunk → embed → store, pipelined so embedding never waits.

This is the one path by which parsed documents reach the database: `memex index`, the upload job and the test
factories all run it. Parsing runs in the parsing sandbox (`runtime.parse_pool.prepare`, separate processes,
see `sandbox.py`), embedding in a thread (it uses every core), storing on the event loop; each document is
written in its own transaction, so a crash leaves it either fully old or fully new, and a bad file fails alone.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from sqlalchemy.ext.asyncio import AsyncConnection

from memex.documents import store as documents
from memex.documents.models import Document
from memex.embeddings import store as embedding_store
from memex.embeddings.base import Embedder, Vectors
from memex.errors import EmbeddingModelChanged, MemexError, ParseError, ParseLimit, UnsupportedFileType
from memex.ingest.prepare import Prepared
from memex.ingest.scan import Failure
from memex.runtime import Runtime

# Chunks gathered before one embedding call. The embedder sorts a call's texts by length before batching,
# so a wide window wastes little on padding; it stays small enough that documents land steadily.
EMBED_BATCH_CHUNKS = 256
# A document's vectors are made again when a model swap lands between embedding and writing; more than one swap
# within one document's indexing is not a thing that happens.
MODEL_SWAP_ATTEMPTS = 3
# Documents an upload job may still write: anything else was finished (or failed) by someone else meanwhile.
PENDING = ("queued", "indexing")
NO_TEXT = "no text found in the file"
# Longest failure reason kept on a document: enough for any message we write, bounded for tracebacks.
MAX_REASON_CHARS = 1000


@dataclass(frozen=True, slots=True)
class WorkItem:
    """One file to (re)index: its bytes come from `load` so they are read only when needed.

    `uploaded` is the document an upload stored (its row and bytes exist already, status queued): it is written
    only while it still holds those bytes, and a failure is recorded on it. Without it, the file's row and bytes
    are written with its chunks.
    """

    source_path: str
    name: str
    load: Callable[[], tuple[bytes, str]]
    modified_at: datetime | None = None
    outcome: str = "added"
    uploaded: Document | None = None


@dataclass(frozen=True, slots=True)
class Written:
    """A document stored with its chunks."""

    source_path: str
    document_id: uuid.UUID
    chunks: int


@dataclass
class Outcomes:
    """What happened to each file, for the summary."""

    done: dict[str, list[str]] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    written: list[Written] = field(default_factory=list)
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


async def run(
    runtime: Runtime,
    *,
    kb_id: uuid.UUID,
    items: Sequence[WorkItem],
    outcomes: Outcomes,
    on_progress: ProgressFn | None = None,
) -> None:
    """Index `items` into the KB, recording each file's outcome; a failing file never stops the others.

    A file that cannot be read or parsed, or holds no text, fails alone (an uploaded document is marked failed
    with the reason). Any other error (the model or the database down) propagates, for the caller to retry.
    """
    ready: asyncio.Queue[_Ready | None] = asyncio.Queue(maxsize=EMBED_BATCH_CHUNKS)
    metrics = runtime.metrics

    def report(outcome: str, path: str) -> None:
        if on_progress:
            on_progress(outcome, path)

    async def fail(item: WorkItem, reason: str, *, retryable: bool = True) -> None:
        if item.uploaded is not None:
            await _record_failure(runtime, item.uploaded, reason, retryable=retryable)
        outcomes.failures.append(Failure(path=item.source_path, reason=reason))
        metrics.document_ingested("failed")
        report("failed", item.source_path)

    async def produce() -> None:
        try:
            for item in items:
                started = time.perf_counter()
                try:
                    data, sha = await asyncio.to_thread(item.load)
                    # Read in the parsing sandbox: the file is untrusted and this process may be serving requests.
                    prepared = await runtime.parse_pool.prepare(data, item.name)
                except FileNotFoundError:
                    await fail(item, "file disappeared before it could be read")
                    continue
                except OSError as exc:
                    await fail(item, f"cannot read: {exc.strerror or exc}")
                    continue
                except MemexError as exc:
                    await fail(item, exc.message, retryable=not _in_the_file(exc))
                    continue
                if not prepared.chunks:
                    await fail(item, NO_TEXT, retryable=False)
                    continue
                seconds = time.perf_counter() - started
                await ready.put(_Ready(item=item, data=data, sha256=sha, prepared=prepared, seconds=seconds))
        finally:
            await ready.put(None)

    async def store(batch: list[_Ready], vectors_per_doc: list[Vectors], generation: int) -> None:
        for entry, vectors in zip(batch, vectors_per_doc, strict=True):
            started = time.perf_counter()
            try:
                document_id = await _store_following_swaps(
                    runtime, kb_id=kb_id, entry=entry, vectors=vectors, generation=generation
                )
            except MemexError as exc:
                await fail(entry.item, exc.message)
                continue
            if document_id is None:
                continue  # an upload replaced or deleted it meanwhile: its own job indexes the new version
            chunks = entry.prepared.chunks
            seconds = entry.seconds + time.perf_counter() - started
            metrics.document_ingested(
                "indexed", seconds=seconds, chunks=len(chunks), tokens=sum(c.token_count for c in chunks)
            )
            outcomes.chunks += len(chunks)
            outcomes.written.append(Written(entry.item.source_path, document_id, len(chunks)))
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
            # Taken before embedding: a swap by `memex reembed` after this makes the write refuse these vectors.
            embedder, generation = await runtime.embedding_model()
            texts = [c.embed_text for e in batch for c in e.prepared.chunks]
            started = time.perf_counter()
            vectors = await _embed(runtime, embedder, batch, texts)
            per_chunk = (time.perf_counter() - started) / max(size, 1)
            per_doc: list[Vectors] = []
            offset = 0
            for e in batch:
                per_doc.append(vectors[offset : offset + len(e.prepared.chunks)])
                offset += len(e.prepared.chunks)
                e.seconds += per_chunk * len(e.prepared.chunks)
            if pending_store is not None:
                await pending_store
            pending_store = asyncio.create_task(store(batch, per_doc, generation))
        if pending_store is not None:
            await pending_store
        await producer
    finally:
        if not producer.done():
            producer.cancel()
        if pending_store is not None and not pending_store.done():
            pending_store.cancel()


async def _embed(runtime: Runtime, embedder: Embedder, batch: Sequence[_Ready], texts: list[str]) -> Vectors:
    """The batch's vectors; an uploaded document too large for one embedding call shows its progress as it goes.

    Its row is updated once per EMBED_BATCH_CHUNKS chunks, so the cost is one small write per call of the model.
    """
    watched: list[tuple[uuid.UUID, int, int]] = []  # document, offset of its first chunk in `texts`, its chunks
    offset = 0
    for e in batch:
        count = len(e.prepared.chunks)
        if e.item.uploaded is not None and count > EMBED_BATCH_CHUNKS:
            watched.append((e.item.uploaded.id, offset, count))
        offset += count
    if not watched:
        return await asyncio.to_thread(embedder.embed_documents, texts)
    parts: list[Vectors] = []
    for start in range(0, len(texts), EMBED_BATCH_CHUNKS):
        await _show_progress(runtime, watched, embedded=start)
        parts.append(await asyncio.to_thread(embedder.embed_documents, texts[start : start + EMBED_BATCH_CHUNKS]))
    await _show_progress(runtime, watched, embedded=len(texts))
    return np.concatenate(parts)


async def _show_progress(runtime: Runtime, watched: Sequence[tuple[uuid.UUID, int, int]], *, embedded: int) -> None:
    progress = [(doc_id, min(max(embedded - first, 0), count), count) for doc_id, first, count in watched]
    async with runtime.engine.begin() as conn:
        await documents.set_progress(conn, progress=progress)


async def _store_following_swaps(
    runtime: Runtime, *, kb_id: uuid.UUID, entry: _Ready, vectors: Vectors, generation: int
) -> uuid.UUID | None:
    """Write one document; when a model swap landed since its vectors were made, follow it and embed again."""
    for attempt in range(MODEL_SWAP_ATTEMPTS):
        try:
            return await _store_one(runtime, kb_id=kb_id, entry=entry, vectors=vectors, generation=generation)
        except EmbeddingModelChanged:
            if attempt == MODEL_SWAP_ATTEMPTS - 1:
                raise
            await runtime.refresh_embeddings()
            embedder, generation = await runtime.embedding_model()
            texts = [c.embed_text for c in entry.prepared.chunks]
            vectors = await asyncio.to_thread(embedder.embed_documents, texts)
    raise AssertionError("unreachable")


async def _store_one(
    runtime: Runtime, *, kb_id: uuid.UUID, entry: _Ready, vectors: Vectors, generation: int
) -> uuid.UUID | None:
    """Write one document's row, bytes and chunks in one transaction; None when an upload superseded it."""
    prepared, uploaded = entry.prepared, entry.item.uploaded
    if uploaded is not None:
        kb_id = uploaded.kb_id  # a job's batch may hold several KBs' uploads
    metadata = json.dumps(prepared.parsed.metadata, default=str)
    async with runtime.engine.begin() as conn:
        # First, before any row is written: the lock it takes orders this writer with a model swap.
        await embedding_store.check_generation(conn, generation)
        if uploaded is None:
            document_id = await documents.put_document(
                conn,
                kb_id=kb_id,
                source_path=entry.item.source_path,
                data=entry.data,
                sha256=entry.sha256,
                title=prepared.parsed.title,
                mime=prepared.mime,
                file_type=prepared.file_type,
                status="indexing",
                modified_at=entry.item.modified_at,
                metadata=metadata,
            )
        else:
            if not await still_current(conn, uploaded):
                return None
            document_id = uploaded.id
            await documents.set_parsed(
                conn,
                document_id=document_id,
                title=prepared.parsed.title,
                mime=prepared.mime,
                file_type=prepared.file_type,
                metadata=metadata,
            )
        # The old chunks stay searchable until this commit swaps in the new ones.
        await documents.replace_chunks(
            conn,
            document_id=document_id,
            kb_id=kb_id,
            chunks=prepared.chunks,
            vectors=vectors,
            generation=generation,
        )
    return document_id


async def still_current(conn: AsyncConnection, doc: Document) -> bool:
    """False when an uploaded document was deleted, replaced by a newer upload, or finished by someone else."""
    current = await documents.get_for_update(conn, document_id=doc.id)
    return current is not None and current.sha256 == doc.sha256 and current.status in PENDING


def _in_the_file(exc: MemexError) -> bool:
    """Whether the file itself is why it could not be read, so that reading the same bytes again fails again.

    Not so for a sandbox limit, which an administrator may raise (and a wall-clock limit may be the machine's load).
    """
    return isinstance(exc, ParseError | UnsupportedFileType) and not isinstance(exc, ParseLimit)


async def _record_failure(runtime: Runtime, doc: Document, reason: str, *, retryable: bool) -> None:
    async with runtime.engine.begin() as conn:
        if await still_current(conn, doc):
            await documents.mark_status(
                conn, document_id=doc.id, status="failed", error=reason[:MAX_REASON_CHARS], retryable=retryable
            )
