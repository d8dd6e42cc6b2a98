"""/mcp: the SDK's own streamable-HTTP client against the app, as an API key's user, and nothing beyond that user."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest
from fastapi import FastAPI
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult

from memex.accounts.models import User
from memex.api.app import create_app
from memex.kbs.models import KnowledgeBase
from memex.mcp import server
from memex.mcp.server import build_server
from memex.runtime import Runtime, open_runtime
from memex.settings import Settings
from tests.factories import BASE_URL, Factory

TOOLS = {"search", "ask", "get_document", "list_knowledge_bases"}


@asynccontextmanager
async def mcp_client(app: FastAPI, key: str, *, mode: str = "auto") -> AsyncIterator[Client]:
    """The SDK's client, speaking to the app in-process (httpx2's ASGI transport, as the SDK uses httpx2)."""
    headers = {"Authorization": f"Bearer {key}"}
    async with (
        httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url=BASE_URL, headers=headers) as http,
        Client(streamable_http_client(f"{BASE_URL}/mcp", http_client=http), mode=mode) as client,
    ):
        yield client


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    """A tool's structured result, checked against the text content it also sent."""
    result = await client.call_tool(tool, arguments)
    assert isinstance(result, CallToolResult)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    assert json.loads(result.content[0].text) == result.structured_content  # type: ignore[union-attr]
    return dict(result.structured_content)


async def fails(client: Client, tool: str, **arguments: Any) -> str:
    """The message of a tool error."""
    result = await client.call_tool(tool, arguments)
    assert isinstance(result, CallToolResult)
    assert result.is_error, result.structured_content
    return str(result.content[0].text)  # type: ignore[union-attr]


@dataclass
class World:
    alice: User
    garden: KnowledgeBase
    herbs: uuid.UUID
    kitchen: KnowledgeBase
    bread: uuid.UUID
    bob_kb: KnowledgeBase
    secret: uuid.UUID
    word: str


@pytest.fixture
async def world(make: Factory, alice: User, bob: User, unique: str) -> World:
    garden = await make.kb(alice, name="garden")
    herbs = await make.document(
        garden, name="herbs.md", text="# Herbs\n\nBasil and thyme grow well on a sunny balcony.\n"
    )
    kitchen = await make.kb(alice, name="kitchen")
    bread = await make.document(
        kitchen,
        name="bread.html",
        text="<html><body><h1>Bread</h1><p>Sourdough rises slowly overnight in a cool kitchen.</p></body></html>",
    )
    word = f"zorblax{unique}"
    bob_kb = await make.kb(bob, name="garden")
    secret = await make.document(bob_kb, name="secret.md", text=f"# Secret\n\nThe {word} basil grows on a balcony.\n")
    return World(alice, garden, herbs, kitchen, bread, bob_kb, secret, word)


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_lists_the_four_tools(make: Factory, app: FastAPI, alice: User, mode: str) -> None:
    _, key = await make.key(alice)
    async with mcp_client(app, key, mode=mode) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == TOOLS
    for tool in tools.values():
        assert tool.description and tool.input_schema["type"] == "object" and tool.output_schema
    search = tools["search"].input_schema
    assert set(search["properties"]) == {"query", "kb", "limit", "mode"} and search["required"] == ["query"]
    assert tools["get_document"].input_schema["required"] == ["document_id"]
    assert tools["search"].annotations is not None and tools["search"].annotations.read_only_hint


async def test_each_tool_answers_as_the_key_user(make: Factory, app: FastAPI, world: World) -> None:
    _, key = await make.key(world.alice, scopes=["read"])
    async with mcp_client(app, key) as client:
        kbs = (await call(client, "list_knowledge_bases"))["knowledge_bases"]
        assert sorted((kb["name"], kb["role"]) for kb in kbs) == [
            ("Personal", "owner"),
            ("garden", "owner"),
            ("kitchen", "owner"),
        ]

        results = (await call(client, "search", query="basil balcony", limit=5))["results"]
        assert results[0]["document_id"] == str(world.herbs) and results[0]["path"] == "herbs.md"
        assert {r["document_id"] for r in results} <= {str(world.herbs), str(world.bread)}
        keyword = await call(client, "search", query="sourdough", kb="kitchen", mode="keyword")
        assert [r["document_id"] for r in keyword["results"]] == [str(world.bread)]

        answer = await call(client, "ask", question="What grows well on a sunny balcony?", kb=str(world.garden.id))
        assert answer["answer"] and answer["citations"]
        assert {c["document_id"] for c in answer["citations"]} == {str(world.herbs)}

        doc = await call(client, "get_document", document_id=str(world.herbs))
        assert doc["document"]["id"] == str(world.herbs) and doc["document"]["status"] == "indexed"
        assert doc["text"] == "# Herbs\n\nBasil and thyme grow well on a sunny balcony.\n"
        assert (doc["offset"], doc["next_offset"], doc["total_chars"]) == (0, None, len(doc["text"]))
        # HTML is read as the text extracted from it, under its headings.
        html = await call(client, "get_document", document_id=str(world.bread))
        assert html["text"] == "## Bread\n\nSourdough rises slowly overnight in a cool kitchen."


async def test_another_users_knowledge_never_appears(make: Factory, app: FastAPI, world: World) -> None:
    _, key = await make.key(world.alice)
    async with mcp_client(app, key) as client:
        kbs = (await call(client, "list_knowledge_bases"))["knowledge_bases"]
        assert str(world.bob_kb.id) not in {kb["id"] for kb in kbs}
        for mode in ("hybrid", "vector", "keyword"):
            results = (await call(client, "search", query=f"{world.word} basil", mode=mode))["results"]
            assert str(world.secret) not in {r["document_id"] for r in results}
            assert world.word not in json.dumps(results)
        # "garden" is alice's own garden here; bob's, by id, does not exist for her.
        assert await fails(client, "search", query="basil", kb=str(world.bob_kb.id)) == "knowledge base not found"
        assert await fails(client, "ask", question="basil?", kb=str(world.bob_kb.id)) == "knowledge base not found"
        answer = await call(client, "ask", question=f"Where does the {world.word} basil grow?")
        assert str(world.secret) not in {c["document_id"] for c in answer["citations"]}
        assert world.word not in answer["answer"]
        assert await fails(client, "get_document", document_id=str(world.secret)) == "document not found"


async def test_a_key_limited_to_one_kb_sees_only_that_kb(make: Factory, app: FastAPI, world: World) -> None:
    _, key = await make.key(world.alice, scopes=["read"], kbs=[world.garden.id])
    async with mcp_client(app, key) as client:
        kbs = (await call(client, "list_knowledge_bases"))["knowledge_bases"]
        assert [kb["id"] for kb in kbs] == [str(world.garden.id)]
        results = (await call(client, "search", query="sourdough bread kitchen basil"))["results"]
        assert {r["document_id"] for r in results} == {str(world.herbs)}
        assert await fails(client, "search", query="bread", kb="kitchen") == (
            "no knowledge base named 'kitchen': see list_knowledge_bases"
        )
        assert await fails(client, "get_document", document_id=str(world.bread)) == "document not found"
        answer = await call(client, "ask", question="How does sourdough rise?")
        assert str(world.bread) not in {c["document_id"] for c in answer["citations"]}


async def test_errors_are_tool_errors_with_the_memex_message(
    make: Factory, app: FastAPI, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, key = await make.key(world.alice)
    async with mcp_client(app, key) as client:
        assert await fails(client, "search", query="a" * 1001) == (
            "the query is 1001 characters long; the limit is 1000 (MEMEX_MAX_QUERY_CHARS)"
        )
        too_few = await fails(client, "search", query="basil", limit=0)
        assert too_few == "limit: Input should be greater than or equal to 1"
        assert await fails(client, "search", query="basil", kb="nowhere") == (
            "no knowledge base named 'nowhere': see list_knowledge_bases"
        )
        not_an_id = await fails(client, "get_document", document_id="nope")
        assert not_an_id.startswith("document_id: Input should be a valid UUID")
        assert await fails(client, "get_document", document_id=str(uuid.uuid4())) == "document not found"
        assert await fails(client, "ask", question="   ") == "the message is empty: type a question"
        assert await fails(client, "list_knowledge_bases", extra=1) == "extra: Extra inputs are not permitted"

        # Long texts come a page at a time.
        monkeypatch.setattr(server, "MAX_TEXT_CHARS", 20)
        first = await call(client, "get_document", document_id=str(world.herbs))
        assert (first["text"], first["next_offset"]) == ("# Herbs\n\nBasil and t", 20)
        rest = await call(client, "get_document", document_id=str(world.herbs), offset=40)
        assert (rest["text"], rest["next_offset"]) == ("sunny balcony.\n", None)


async def test_needs_an_api_key(make: Factory, app: FastAPI, alice: User) -> None:
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    headers = {"Accept": "application/json, text/event-stream"}
    anonymous = await make.client().post("/mcp", json=initialize, headers=headers)
    assert anonymous.status_code == 401
    assert anonymous.json() == {"detail": "authentication required: send 'Authorization: Bearer <api key>'"}
    assert anonymous.headers["WWW-Authenticate"] == "Bearer"
    wrong = await make.client(key="mx_nope_nope").post("/mcp", json=initialize, headers=headers)
    assert wrong.status_code == 401 and "detail" in wrong.json()
    # A browser's session cookie is not enough: /mcp has no CSRF check.
    session = await make.as_user(alice)
    assert (await session.post("/mcp", json=initialize, headers=headers)).status_code == 401

    _, key = await make.key(alice)
    accepted = await make.client(key=key).post("/mcp", json=initialize, headers=headers)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["result"]["serverInfo"]["name"] == "memex"


class _BrokenBackend:
    async def knowledge_bases(self) -> list[dict[str, Any]]:
        raise RuntimeError("the disk caught fire")


async def test_an_unexpected_failure_is_a_tool_error_not_a_crash() -> None:
    async with Client(build_server(_BrokenBackend())) as client:  # type: ignore[arg-type]
        assert await fails(client, "list_knowledge_bases") == "internal error: see the server log"
        assert await fails(client, "search", query="basil", kb="garden") == "internal error: see the server log"
        assert (await client.list_tools()).tools  # still serving


async def test_searches_and_questions_count_against_the_apis_rate_limits(
    make: Factory, runtime: Runtime, settings: Settings, world: World
) -> None:
    limited = settings.model_copy(update={"rate_limit_search": "2/minute", "rate_limit_chat": "1/hour"})
    instance = await open_runtime(limited)
    instance.use_embedder(runtime.embedder)
    try:
        _, key = await make.key(world.alice)
        async with mcp_client(create_app(limited, runtime=instance), key) as client:
            for _ in range(2):
                await call(client, "search", query="basil")
            refused = await fails(client, "search", query="basil")
            assert refused.startswith("too many searches: the limit is 2 per minute; try again in")
            await call(client, "ask", question="What grows on a balcony?")
            assert (await fails(client, "ask", question="And thyme?")).startswith("too many chat questions")
            assert (await call(client, "list_knowledge_bases"))["knowledge_bases"]  # not limited
    finally:
        await instance.close()
