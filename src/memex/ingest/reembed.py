"""Moving every vector to another embedding model without stopping search (`memex reembed`).

The new vectors are built beside the old ones, in `chunks.embedding_next`, while searches and writers go on
using `chunks.embedding`. Chunks written meanwhile are picked up by further passes. The new column is then
indexed without blocking writes, and swapped in by one short transaction that renames the columns and writes
the next model generation; every process follows the record from its next search or write on. The replaced
vectors stay (`embedding_previous`) for `--rollback` until `--discard-previous`.

A run that dies leaves the staged column and its record: the next run for the same model goes on from there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import sqlalchemy as sa
import structlog
from sqlalchemy.exc import DBAPIError

from memex.embeddings import build_embedder, store
from memex.embeddings.base import Embedder
from memex.embeddings.spec import EmbeddingSpec, StoredModel
from memex.errors import Conflict, InvalidInput
from memex.runtime import Runtime

log = structlog.get_logger(__name__)

_BATCH = 256
# The swap waits this long for running searches and writers before it steps back and tries again, so that the
# searches queued behind its lock never wait longer than this.
_LOCK_TIMEOUT = "2s"
_SWAP_ATTEMPTS = 30

Phase = Literal["embedding", "indexing", "swapping"]
ProgressFn = Callable[[Phase, int, int], None]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a run did: the model the vectors now come from, and how many chunks it embedded."""

    model: EmbeddingSpec
    previous: EmbeddingSpec | None
    embedded: int
    changed: bool


async def reembed(runtime: Runtime, target: EmbeddingSpec, *, on_progress: ProgressFn | None = None) -> Outcome:
    """Build `target`'s vectors beside the current ones, then swap them in; resumes a run that died."""
    current = await _current(runtime)
    if current.spec.same_model(target):
        async with runtime.engine.begin() as conn:
            staged = await store.record(conn, store.STAGED_KEY)
            if staged is not None:
                # A run towards another model died here; its column is of no use now.
                await store.drop_column(conn, "embedding_next")
                await store.forget(conn, store.STAGED_KEY)
        return Outcome(model=current.spec, previous=None, embedded=0, changed=False)
    embedder = await asyncio.to_thread(build_embedder, runtime.settings, target)
    await _probe(embedder, target)
    await _stage(runtime, target)
    embedded = await _fill(runtime, "embedding_next", embedder, on_progress)
    await _index(runtime, "embedding_next", on_progress)
    await _swap(runtime, "embedding_next", target, embedder, expected=current, on_progress=on_progress)
    log.info("embeddings swapped", model=target.describe(), previous=current.spec.describe(), chunks=embedded)
    return Outcome(model=target, previous=current.spec, embedded=embedded, changed=True)


async def rollback(runtime: Runtime, *, on_progress: ProgressFn | None = None) -> Outcome:
    """Swap the kept previous vectors back in (filling those of chunks written since with the previous model)."""
    current = await _current(runtime)
    async with runtime.engine.connect() as conn:
        found = await store.record(conn, store.PREVIOUS_KEY)
        kept = await store.column_dimension(conn, "embedding_previous")
    if found is None or kept is None:
        raise Conflict("there are no previous vectors to go back to (none were kept, or they were discarded)")
    previous = StoredModel.from_record(found, settings=runtime.settings).spec
    embedder = await asyncio.to_thread(build_embedder, runtime.settings, previous)
    embedded = await _fill(runtime, "embedding_previous", embedder, on_progress)
    await _index(runtime, "embedding_previous", on_progress)
    await _swap(runtime, "embedding_previous", previous, embedder, expected=current, on_progress=on_progress)
    log.info("embeddings rolled back", model=previous.describe(), previous=current.spec.describe())
    return Outcome(model=previous, previous=current.spec, embedded=embedded, changed=True)


async def discard_previous(runtime: Runtime) -> EmbeddingSpec | None:
    """Drop the kept previous vectors (their disk space returns as the table is vacuumed); what they were."""
    async with runtime.engine.begin() as conn:
        found = await store.record(conn, store.PREVIOUS_KEY)
        await store.drop_column(conn, "embedding_previous")
        await store.forget(conn, store.PREVIOUS_KEY)
    return None if found is None else StoredModel.from_record(found, settings=runtime.settings).spec


async def _current(runtime: Runtime) -> StoredModel:
    async with runtime.engine.begin() as conn:
        found = await store.insert_if_missing(conn, StoredModel(EmbeddingSpec.from_settings(runtime.settings)).record())
    return StoredModel.from_record(found, settings=runtime.settings)


async def _probe(embedder: Embedder, target: EmbeddingSpec) -> None:
    """Embed one text before touching the database: a wrong URL, key or dimension fails here, with its reason."""
    vectors = await asyncio.to_thread(embedder.embed_documents, ["memex"])
    if vectors.shape[1] != target.dimension:
        raise InvalidInput(
            f"{target.name} makes vectors of {vectors.shape[1]} dimensions, not {target.dimension}: "
            f"run memex reembed --model {target.name} --dimension {vectors.shape[1]}"
        )


async def _stage(runtime: Runtime, target: EmbeddingSpec) -> None:
    """Make `embedding_next` for `target`, or keep the one a run for the same model left."""
    wanted = StoredModel(target).record()
    async with runtime.engine.begin() as conn:
        staged = await store.record(conn, store.STAGED_KEY, for_update=True)
        dimension = await store.column_dimension(conn, "embedding_next")
        if staged == wanted and dimension == target.dimension:
            log.info("re-embedding resumed", model=target.describe())
            return
        await store.drop_column(conn, "embedding_next")
        await store.add_column(conn, "embedding_next", dimension=target.dimension)
        await store.write(conn, wanted, store.STAGED_KEY)


async def _fill(runtime: Runtime, column: store.Column, embedder: Embedder, on_progress: ProgressFn | None) -> int:
    """Embed every chunk whose `column` is empty; passes repeat until a pass finds none (writers add chunks)."""
    async with runtime.engine.connect() as conn:
        done, total = await store.progress(conn, column)
    if on_progress:
        on_progress("embedding", done, total)
    embedded = 0
    while True:
        last_id, found = 0, 0
        while True:
            async with runtime.engine.connect() as conn:
                rows = await store.unfilled(conn, column, after=last_id, limit=_BATCH)
            if not rows:
                break
            vectors = await asyncio.to_thread(embedder.embed_documents, [_text(r) for r in rows])
            async with runtime.engine.begin() as conn:
                await store.fill(conn, column, ids=[r.id for r in rows], vectors=vectors)
            last_id, found = rows[-1].id, found + len(rows)
            done += len(rows)
            if on_progress:
                on_progress("embedding", done, max(total, done))
        embedded += found
        if not found:
            return embedded
        async with runtime.engine.connect() as conn:
            done, total = await store.progress(conn, column)


async def _index(runtime: Runtime, column: store.Column, on_progress: ProgressFn | None) -> None:
    async with runtime.engine.connect() as conn:
        state = await store.index_state(conn, column)
    if state == "valid":
        return
    if on_progress:
        on_progress("indexing", 0, 1)
    autocommit = runtime.engine.execution_options(isolation_level="AUTOCOMMIT")
    async with autocommit.connect() as conn:
        await store.build_index(conn, column)
    if on_progress:
        on_progress("indexing", 1, 1)


async def _swap(
    runtime: Runtime,
    column: store.Column,
    target: EmbeddingSpec,
    embedder: Embedder,
    *,
    expected: StoredModel,
    on_progress: ProgressFn | None,
) -> None:
    """The one transaction that changes what every search reads: short, and it steps back rather than queue."""
    if on_progress:
        on_progress("swapping", 0, 1)
    for _attempt in range(_SWAP_ATTEMPTS):
        try:
            async with runtime.engine.begin() as conn:
                await store.limit_lock_wait(conn, _LOCK_TIMEOUT)
                found = await store.record(conn, for_update=True)
                if found is None or StoredModel.from_record(found, settings=runtime.settings) != expected:
                    raise Conflict("another memex reembed changed the model meanwhile: run this one again")
                # Chunks written since the last pass: the writers are held off by the record's lock now.
                while rows := await store.unfilled(conn, column, after=0, limit=_BATCH):
                    vectors = await asyncio.to_thread(embedder.embed_documents, [_text(r) for r in rows])
                    await store.fill(conn, column, ids=[r.id for r in rows], vectors=vectors)
                await store.swap(conn, column)
                await store.write(conn, StoredModel(target, expected.generation + 1).record())
                await store.write(conn, expected.record(), store.PREVIOUS_KEY)
                await store.forget(conn, store.STAGED_KEY)
        except DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) != "55P03":  # lock_not_available
                raise
            log.info("swap waited too long for running searches; trying again")
            await asyncio.sleep(0.5)
            continue
        if on_progress:
            on_progress("swapping", 1, 1)
        return
    raise Conflict("the swap could not get a moment without running queries: run memex reembed again")


def _text(row: sa.Row[tuple[object, ...]]) -> str:
    context, text = row.context, row.text
    return f"{context}\n{text}" if context else str(text)
