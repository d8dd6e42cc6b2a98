"""Search: validate the request, resolve what the caller may read, embed the query, run the SQL."""

from __future__ import annotations

import asyncio
import dataclasses
import html
import time
from dataclasses import dataclass

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from memex.embeddings import store as embedding_store
from memex.embeddings.base import Embedder, Vectors, vector_literal
from memex.errors import InvalidInput, NotFound, QueryTooLong
from memex.kbs import store as kbs
from memex.kbs.access import Actor
from memex.logging import query_fields
from memex.runtime import Runtime
from memex.search import store
from memex.search.models import MAX_LIMIT, MODES, SearchPage, SearchRequest, SearchResult, mode_named
from memex.search.query import ParsedQuery, glob_to_regex, parse_query, word_regex
from memex.search.snippets import make_snippet

log = structlog.get_logger("memex.search")

_MIN_CANDIDATES = 40
# HNSW filters after it walks the graph, so a search limited to a small part of the corpus finds few
# neighbours. Below this many chunks an exact scan of just those chunks is fast and always complete;
# above it, ef_search grows with how little of the graph the caller may see.
EXACT_SEARCH_BELOW = 10_000
MAX_EF_SEARCH = 1000


def candidates_for(limit: int) -> int:
    """How deep each list is read before fusion: deeper lists let a result strong in one list still surface."""
    return max(_MIN_CANDIDATES, limit * 4)


async def search(runtime: Runtime, actor: Actor, request: SearchRequest) -> list[SearchResult]:
    """Hybrid, vector or keyword search over the KBs the actor may read: the results alone."""
    return (await search_page(runtime, actor, request)).results


async def search_page(runtime: Runtime, actor: Actor, request: SearchRequest) -> SearchPage:
    """Hybrid, vector or keyword search over the KBs the actor may read, one page of relevant results."""
    settings = runtime.settings
    request = dataclasses.replace(request, mode=mode_named(request.mode))  # type: ignore[arg-type]
    if len(request.query) > settings.max_query_chars:
        raise QueryTooLong(
            f"the query is {len(request.query)} characters long; the limit is {settings.max_query_chars} (MEMEX_MAX_QUERY_CHARS)"
        )
    if request.mode not in MODES:
        raise InvalidInput(f"unknown search mode {request.mode!r}: use one of {', '.join(MODES)}")
    if not 1 <= request.limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}")
    if request.offset < 0:
        raise InvalidInput("offset must be 0 or more")
    f = request.filters
    if "\x00" in request.query or "\x00" in (f.path_prefix or "") or any("\x00" in t for t in f.file_types):
        raise InvalidInput("the query contains a NUL character; remove it and try again")
    parsed = parse_query(request.query) if request.operators else ParsedQuery(text=" ".join(request.query.split()))
    if not parsed.text and not parsed.required:
        raise InvalidInput("the query is empty: type some words to search for")

    # The query embedding (a few ms on the CPU) runs while the database answers the lookups below.
    started = time.perf_counter()
    clock = _Clock()
    embedding = None
    if request.mode != "keyword":
        embedding = asyncio.create_task(asyncio.to_thread(_embed, runtime.embedder, parsed.search_text, clock))
    try:
        # One transaction, one pooled connection, and a commit: psycopg forgets its prepared statements on
        # every rollback, and these statements run on every search.
        database_started = time.perf_counter()
        async with runtime.engine.begin() as conn:
            found = await _run(runtime, conn, actor, request, parsed, embedding, clock)
        sql_seconds = time.perf_counter() - database_started - clock.waited
    finally:
        if embedding is not None and not embedding.done():
            embedding.cancel()
    rows = found.rows
    runtime.metrics.searched(
        mode=request.mode,
        seconds=time.perf_counter() - started,
        embedding_seconds=clock.embedding,
        sql_seconds=sql_seconds,
        results=len(rows),
    )
    log.info(
        "search",
        mode=request.mode,
        results=len(rows),
        limit=request.limit,
        kb=",".join(map(str, request.filters.kb_ids)) or None,
        user=str(actor.user_id) if actor.user_id else None,
        latency_ms=round((time.perf_counter() - started) * 1000, 2),
        **query_fields(settings, request.query),
    )
    results = [
        SearchResult(
            chunk_id=r.chunk_id,
            document_id=r.document_id,
            kb=r.kb_id,
            kb_name=r.kb_name,
            title=r.title,
            path=r.source_path,
            heading=r.heading,
            location=r.location,
            text=r.text,
            snippet=highlight_html(make_snippet(r.snippet)),
            score=float(r.score),
        )
        for r in rows
    ]
    end = request.offset + len(results)
    return SearchPage(
        results=results,
        hidden=found.pooled - found.relevant,
        next_offset=end if results and end < found.relevant else None,
    )


async def _run(
    runtime: Runtime,
    conn: AsyncConnection,
    actor: Actor,
    request: SearchRequest,
    parsed: ParsedQuery,
    embedding: asyncio.Task[Vectors] | None,
    clock: _Clock,
) -> store.Found:
    if embedding is not None:
        embedding = await _for_stored_vectors(runtime, conn, embedding, parsed.search_text, clock)
    readable = {kb.id for kb in await kbs.list_for(conn, actor)}
    wanted = set(request.filters.kb_ids)
    if wanted - readable:
        # Same answer for "does not exist" and "not yours", so ids cannot be probed.
        raise NotFound("knowledge base not found")
    kb_ids = sorted(wanted or readable)
    if not kb_ids:
        return store.Found(rows=[], pooled=0, relevant=0)
    f = request.filters
    filters = store.SqlFilters(
        kb_ids=kb_ids,
        file_types=[t.lower().lstrip(".") for t in f.file_types] or None,
        path_prefix=f.path_prefix,
        modified_after=f.modified_after,
        modified_before=f.modified_before,
        file_globs=[glob_to_regex(g) for g in parsed.file_globs] or None,
        required=[word_regex(w) for w in parsed.required] or None,
        excluded=[word_regex(w) for w in parsed.excluded] or None,
        document_id=request.document_id,
    )
    candidates = candidates_for(request.limit)
    ef_search = runtime.settings.hnsw_ef_search
    exact = request.exact
    if request.document_id is not None:
        exact = True  # one document's chunks: an exact scan is small, and HNSW would find few of them
    elif request.mode != "keyword" and not exact:
        mine, total = await store.searchable_chunks(conn, kb_ids=kb_ids)
        if mine < total:
            exact = mine <= EXACT_SEARCH_BELOW
            ef_search = min(MAX_EF_SEARCH, max(ef_search, int(candidates * total / max(mine, 1))))
    return await store.search(
        conn,
        mode=request.mode,
        filters=filters,
        query_text=parsed.search_text,
        query_vector=_vector(embedding, clock),
        limit=request.limit,
        candidates=candidates,
        ef_search=ef_search,
        exact=exact,
        offset=request.offset,
        # Every passage holds a required word (`+word`), so none is unrelated.
        min_similarity=runtime.settings.search_min_similarity if request.cutoff and not parsed.required else -2.0,
    )


async def _for_stored_vectors(
    runtime: Runtime, conn: AsyncConnection, embedding: asyncio.Task[Vectors], text: str, clock: _Clock
) -> asyncio.Task[Vectors]:
    """The query embedding made by the model of the vectors this transaction will read.

    Reading the generation locks `chunks` until the transaction ends, so a swap by `memex reembed` lands either
    before this (and the query is embedded again with the new model) or after the search.
    """
    generation = await embedding_store.generation_locking_chunks(conn)
    if generation == runtime.embedding_generation:
        return embedding
    embedding.cancel()
    await runtime.refresh_embeddings()
    return asyncio.create_task(asyncio.to_thread(_embed, runtime.embedder, text, clock))


@dataclass(slots=True)
class _Clock:
    """Where a search's time went, for the metrics: the query embedding, and how long the SQL waited for it."""

    embedding: float | None = None
    waited: float = 0.0


def _embed(embedder: Embedder, text: str, clock: _Clock) -> Vectors:
    started = time.perf_counter()
    vector = embedder.embed_query(text)
    clock.embedding = time.perf_counter() - started
    return vector


async def _vector(embedding: asyncio.Task[Vectors] | None, clock: _Clock) -> str | None:
    if embedding is None:
        return None
    started = time.perf_counter()
    vector = await embedding
    clock.waited = time.perf_counter() - started
    return vector_literal(vector)


def highlight_html(snippet: str) -> str:
    """Escape the snippet for HTML, then turn the match sentinels into <mark> tags."""
    return html.escape(snippet).replace(store.MARK_START, "<mark>").replace(store.MARK_END, "</mark>")
