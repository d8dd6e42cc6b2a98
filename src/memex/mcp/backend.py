"""What the MCP tools need from Memex. Every backend answers in the HTTP API's JSON shapes, so a tool's result
is the same whether it ran on the local database or through a server."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

# Formats whose file, decoded, is the best text to read; the others (HTML, PDF, DOCX) are read as extracted text.
PLAIN_TEXT_MIMES = frozenset({"text/markdown", "text/plain", "text/x-org", "text/x-rst", "application/json"})


class Backend(Protocol):
    async def knowledge_bases(self) -> list[dict[str, Any]]:
        """The knowledge bases the caller may read, as `GET /api/kbs` lists them."""
        ...

    async def search(self, *, query: str, kb_id: str | None, limit: int, mode: str) -> list[dict[str, Any]]:
        """Results as `GET /api/search` returns them, best first."""
        ...

    async def ask(self, *, question: str, kb_id: str | None) -> dict[str, Any]:
        """A grounded answer as `POST /api/chat` with `stream: false` returns it."""
        ...

    async def document(self, document_id: str) -> tuple[dict[str, Any], str]:
        """A document as `GET /api/documents/{id}` returns it, and its text."""
        ...


def join_sections(sections: Iterable[tuple[str, str]]) -> str:
    """(heading, text) pairs as one text, with a heading line wherever the heading changes."""
    parts: list[str] = []
    current = ""
    for heading, text in sections:
        if heading and heading != current:
            parts.append(f"## {heading}")
        current = heading
        parts.append(text)
    return "\n\n".join(parts)
