"""What each kind of request sends: search queries, long questions, streamed chat, generated uploads."""

from __future__ import annotations

import json
import random

import httpx

from memex.loadtest.scenarios import CHAT, COMPLEX_SEARCH, SEARCH, UPLOAD

SHORT_QUERIES = (
    "backup",
    "install guide",
    "api keys",
    "rate limits",
    "search ranking",
    "embedding model",
    "postgres upgrade",
    "error codes",
    "release notes",
    "meeting minutes",
    "onboarding",
    "invoice",
)
LONG_QUESTIONS = (
    "How do I restore a backup into a fresh installation without losing the search index?",
    "What changed in the latest release that affects how documents are chunked and embedded?",
    "Which settings control how many requests a user may send per minute, and where are they documented?",
    "Summarise the steps to rotate an API key used by a scheduled job that uploads reports every night.",
    "Why would a document stay queued for a long time, and what can an operator do about it?",
    "Compare the two deployment options described in the handbook and say when to choose each.",
    "What does the team agree to do when a production database runs out of disk space?",
    "List the known limitations of importing scanned PDF files and how to work around them.",
)
_WORDS = (
    "the archive holds reports notes and minutes from every project meeting with decisions owners and dates "
    "budgets were reviewed twice a year and the findings written up for the board together with risks"
).split()


class RequestFailed(Exception):
    """A request that reached no good end; its text is the kind of failure shown in the report."""


def fake_document(rng: random.Random, *, size_bytes: int) -> bytes:
    """A markdown file of about `size_bytes`, different every time (so the server never skips it as known)."""
    lines = [f"# Load test document {rng.getrandbits(64):016x}", ""]
    size = len(lines[0])
    while size < size_bytes:
        line = " ".join(rng.choice(_WORDS) for _ in range(14)).capitalize() + "."
        lines.append(line)
        size += len(line) + 1
    return "\n".join(lines).encode()[:size_bytes]


async def send(
    client: httpx.AsyncClient, kind: str, *, rng: random.Random, kb_id: str | None, file_kb: tuple[int, int]
) -> None:
    """Send one request of `kind`; raises RequestFailed unless the server answered it successfully."""
    if kind == SEARCH:
        response = await client.get("/api/search", params={"q": rng.choice(SHORT_QUERIES)})
    elif kind == COMPLEX_SEARCH:
        response = await client.get("/api/search", params={"q": rng.choice(LONG_QUESTIONS), "limit": 20})
    elif kind == CHAT:
        await _chat(client, rng.choice(LONG_QUESTIONS))
        return
    elif kind == UPLOAD:
        assert kb_id is not None
        size = rng.randint(file_kb[0] * 1024, file_kb[1] * 1024)
        name = f"loadtest-{rng.getrandbits(48):012x}.md"
        files = [("files", (name, fake_document(rng, size_bytes=size), "text/markdown"))]
        response = await client.post(f"/api/kbs/{kb_id}/documents", files=files)
    else:
        raise ValueError(f"unknown request kind {kind}")
    if response.status_code >= 400:
        raise RequestFailed(failure(response.status_code))


def failure(status: int) -> str:
    """How a refused request is counted in the report."""
    return {401: "HTTP 401 (API key refused)", 403: "HTTP 403 (not allowed)", 429: "HTTP 429 (rate limited)"}.get(
        status, f"HTTP {status}"
    )


async def _chat(client: httpx.AsyncClient, question: str) -> None:
    """A streamed chat answer, read to its last event (its latency is the whole answer's)."""
    body = {"message": question, "stream": True}
    async with client.stream("POST", "/api/chat", json=body) as response:
        if response.status_code >= 400:
            raise RequestFailed(failure(response.status_code))
        event = ""
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                event = line.removeprefix("event:").strip()
            elif line.startswith("data:") and event == "error":
                raise RequestFailed("chat error event: " + str(json.loads(line.removeprefix("data:")).get("detail")))
            elif event == "done":
                return
    if event != "done":
        raise RequestFailed("chat stream ended early")
