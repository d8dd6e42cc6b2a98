"""The tools on this process's database, as one actor: the system actor for `memex mcp`, a key's actor at /mcp."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, cast

from memex.api.schemas import DocumentOut, KbOut
from memex.chat import service as chat
from memex.chat.models import ChatRequest
from memex.documents import service as documents
from memex.documents import store as document_store
from memex.ingest.detect import decode_text
from memex.kbs import service as kbs
from memex.kbs.access import Actor
from memex.mcp.backend import PLAIN_TEXT_MIMES, join_sections
from memex.ratelimit import Bucket, caller
from memex.runtime import Runtime
from memex.search import service as search
from memex.search.models import Mode, SearchFilters, SearchRequest


@dataclass(frozen=True, slots=True)
class LocalBackend:
    runtime: Runtime
    actor: Actor
    # At /mcp, searches and questions count against the API's rate limits; the local CLI has none.
    rate_limited: bool = False

    async def knowledge_bases(self) -> list[dict[str, Any]]:
        async with self.runtime.engine.begin() as conn:
            listings = await kbs.list_kbs(conn, self.actor)
        return [KbOut.of(listing).model_dump(mode="json") for listing in listings]

    async def search(self, *, query: str, kb_id: str | None, limit: int, mode: str) -> list[dict[str, Any]]:
        await self._count("search")
        request = SearchRequest(
            query=query,
            limit=limit,
            mode=cast(Mode, mode),  # the service refuses unknown modes with a clear message
            filters=SearchFilters(kb_ids=(uuid.UUID(kb_id),) if kb_id else ()),
        )
        return [r.as_dict() for r in await search.search(self.runtime, self.actor, request)]

    async def ask(self, *, question: str, kb_id: str | None) -> dict[str, Any]:
        await self._count("chat")
        request = ChatRequest(message=question, kb_ids=(uuid.UUID(kb_id),) if kb_id else ())
        return (await chat.ask(self.runtime, self.actor, request)).as_dict()

    async def document(self, document_id: str) -> tuple[dict[str, Any], str]:
        async with self.runtime.engine.begin() as conn:
            doc = await documents.get(conn, self.actor, uuid.UUID(document_id))
            if doc.mime in PLAIN_TEXT_MIMES:
                doc, data = await documents.original(conn, self.actor, doc.id)
                text = decode_text(data)
            else:
                text = join_sections(await document_store.chunks_of(conn, document_id=doc.id))
        return DocumentOut.of(doc).model_dump(mode="json"), text

    async def _count(self, bucket: Bucket) -> None:
        if self.rate_limited:
            # The API's own buckets and key (api/deps.py `rate_limit`), so /mcp is no way around its limits.
            await self.runtime.rate_limits.hit(bucket, caller(self.actor))
