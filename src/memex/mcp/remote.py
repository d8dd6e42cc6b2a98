"""The tools through a Memex server's HTTP API (`memex mcp --url`), as the API key's user."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from memex.cli.remote import RemoteClient
from memex.errors import NotFound
from memex.ingest.chunking import HEADING_SEPARATOR
from memex.ingest.detect import decode_text
from memex.ingest.parsers import parse_bytes
from memex.mcp.backend import PLAIN_TEXT_MIMES, join_sections


@dataclass(frozen=True, slots=True)
class RemoteBackend:
    client: RemoteClient

    async def knowledge_bases(self) -> list[dict[str, Any]]:
        return await self.client.kbs()

    async def search(self, *, query: str, kb_id: str | None, limit: int, mode: str) -> list[dict[str, Any]]:
        params: list[tuple[str, str | int]] = [("q", query), ("limit", limit), ("mode", mode)]
        if kb_id:
            params.append(("kb", kb_id))
        return list((await self.client.search(params))["results"])

    async def ask(self, *, question: str, kb_id: str | None) -> dict[str, Any]:
        return await self.client.chat(question, kb_ids=[kb_id] if kb_id else [])

    async def document(self, document_id: str) -> tuple[dict[str, Any], str]:
        doc = await self.client.document(document_id)
        if doc is None:
            raise NotFound("document not found")
        data = await self.client.document_file(document_id)
        if doc["mime"] in PLAIN_TEXT_MIMES:
            return doc, decode_text(data)
        # The API serves the original only: its text is extracted here, as ingestion extracted it on the server.
        parsed = await asyncio.to_thread(parse_bytes, data, doc["name"])
        sections = [(HEADING_SEPARATOR.join(s.heading_path), s.text) for s in parsed.sections]
        return doc, join_sections(sections)
