"""`GET /api/search`: hybrid, vector or keyword search over the KBs the caller may read."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from memex.api.deps import CurrentActor, RuntimeDep, rate_limit
from memex.api.schemas import error_responses
from memex.search import service
from memex.search.models import MAX_LIMIT, SearchFilters, SearchRequest

router = APIRouter(prefix="/api", tags=["search"], responses=error_responses(400, 401, 403, 404, 422, 429))


@router.get("/search", dependencies=[Depends(rate_limit("search"))])
async def search(
    actor: CurrentActor,
    runtime: RuntimeDep,
    q: Annotated[str, Query(description='What to look for. Supports file:"*.md", +"must", -"must not".')],
    kb: Annotated[
        list[uuid.UUID] | None, Query(description="Knowledge base ids (repeatable); default all readable.")
    ] = None,
    limit: Annotated[int, Query(description=f"How many results, 1 to {MAX_LIMIT}.")] = 10,
    mode: Annotated[str, Query(description="hybrid, keyword, or vector (also called semantic).")] = "hybrid",
    type: Annotated[list[str] | None, Query(description="Only these file types (md, pdf...), repeatable.")] = None,
    path: Annotated[str | None, Query(description="Only documents whose path starts with this.")] = None,
    offset: Annotated[int, Query(description="Results to skip, for the next page: the last answer's next_offset.")] = 0,
    document: Annotated[uuid.UUID | None, Query(description="Only passages of this document.")] = None,
    include_weak: Annotated[
        bool, Query(description="Also return passages below the relevance cut-off (MEMEX_SEARCH_MIN_SIMILARITY).")
    ] = False,
) -> dict[str, object]:
    """Results best first: `{results: [{document_id, kb, kb_name, title, path, heading, location, text, snippet,
    score, chunk_id}], hidden, next_offset}`. `hidden` counts passages left out by the relevance cut-off;
    `next_offset` is where the next page starts, or null. 400 for an over-long query (MEMEX_MAX_QUERY_CHARS),
    404 for a KB the caller cannot read."""
    request = SearchRequest(
        query=q,
        limit=limit,
        mode=mode,  # type: ignore[arg-type]  # the service refuses unknown modes with a clear message
        filters=SearchFilters(kb_ids=tuple(kb or ()), file_types=tuple(type or ()), path_prefix=path or None),
        offset=offset,
        cutoff=not include_weak,
        document_id=document,
    )
    return (await service.search_page(runtime, actor, request)).as_dict()
