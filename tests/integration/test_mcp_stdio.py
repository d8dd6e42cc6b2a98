"""`memex mcp` as an MCP client launches it: over stdio on the local database, and with --url through a real server
(whose own /mcp endpoint is checked here too, under uvicorn)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult

from memex.api.app import create_app
from memex.runtime import Runtime
from memex.settings import Settings
from tests.conftest import DATA, clone_database, drop_database
from tests.factories import Factory
from tests.integration.test_serve import Served, memex_env, start_server, stop_server, wait_for

COMMAND = [sys.executable, "-c", "from memex.cli.main import main; main()", "mcp"]
HERBS = "# Herbs\n\nBasil and thyme grow well on a sunny balcony.\n"


def clean_env(**extra: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("MEMEX_")} | extra


@asynccontextmanager
async def memex_mcp(env: dict[str, str], log: Path, *args: str) -> AsyncIterator[Client]:
    """The SDK's stdio client running `memex mcp ARGS`, its stderr in `log`."""
    params = StdioServerParameters(command=COMMAND[0], args=[*COMMAND[1:], *args], env=env)
    with open(log, "w") as errlog:
        async with Client(stdio_client(params, errlog=errlog)) as client:
            yield client


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert isinstance(result, CallToolResult)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return dict(result.structured_content)


async def fails(client: Client, tool: str, **arguments: Any) -> str:
    result = await client.call_tool(tool, arguments)
    assert isinstance(result, CallToolResult) and result.is_error, result
    return str(result.content[0].text)  # type: ignore[union-attr]


# Local: the database itself, as the system actor (every knowledge base).


@pytest.fixture
async def local_env(
    runtime: Runtime, settings: Settings, database_url: str, tmp_path: Path, model_cache_dir: Path
) -> dict[str, str]:
    make = Factory(runtime=runtime, app=create_app(settings, runtime=runtime))
    alice, bob = await make.user(), await make.user()
    await make.document(await make.kb(alice, name="garden"), name="herbs.md", text=HERBS)
    await make.document(await make.kb(bob, name="kitchen"), name="bread.md", text="# Bread\n\nSourdough rises.\n")
    return clean_env(
        MEMEX_DATABASE_URL=database_url,
        MEMEX_DATA_DIR=str(tmp_path / "mcp-data"),
        MEMEX_MODEL_CACHE_DIR=str(model_cache_dir),
    )


async def test_local_mode_serves_every_knowledge_base(local_env: dict[str, str], tmp_path: Path) -> None:
    async with memex_mcp(local_env, tmp_path / "mcp.log") as client:
        assert {t.name for t in (await client.list_tools()).tools} == {
            "search", "ask", "get_document", "list_knowledge_bases"
        }  # fmt: skip
        kbs = (await call(client, "list_knowledge_bases"))["knowledge_bases"]
        assert {"garden", "kitchen"} <= {kb["name"] for kb in kbs}

        results = (await call(client, "search", query="basil balcony", kb="garden"))["results"]
        assert results[0]["path"] == "herbs.md"
        doc = await call(client, "get_document", document_id=results[0]["document_id"])
        assert doc["text"] == HERBS and doc["document"]["title"] == "Herbs"
        answer = await call(client, "ask", question="How does sourdough rise?")
        assert "Sourdough rises." in answer["answer"] and "bread.md" in {c["path"] for c in answer["citations"]}

        assert await fails(client, "get_document", document_id=str(uuid.uuid4())) == "document not found"
        assert await fails(client, "search", query="basil", kb="nowhere") == (
            "no knowledge base named 'nowhere': see list_knowledge_bases"
        )


async def test_stdout_carries_only_mcp_messages(local_env: dict[str, str]) -> None:
    """Raw protocol, with debug logging on: every line on stdout is a JSON-RPC message, the logs go to stderr."""
    process = await asyncio.create_subprocess_exec(
        *COMMAND,
        env=local_env | {"MEMEX_LOG_LEVEL": "debug"},
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdin is not None and process.stdout is not None and process.stderr is not None
    hello = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}
    requests: list[dict[str, Any]] = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": hello},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {"name": "search", "arguments": {"query": "sourdough"}},
        },
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "nope", "arguments": {}}},
    ]
    replies: dict[int, dict[str, Any]] = {}
    try:
        for request in requests:
            process.stdin.write(json.dumps(request).encode() + b"\n")
            await process.stdin.drain()
            if "id" in request:
                line = await asyncio.wait_for(process.stdout.readline(), timeout=120)
                reply = json.loads(line)
                assert reply["jsonrpc"] == "2.0", line
                replies[reply["id"]] = reply
        process.stdin.close()
        rest, errors = await asyncio.wait_for(process.communicate(), timeout=60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert rest == b"", rest
    assert process.returncode == 0, errors.decode()
    assert replies[1]["result"]["serverInfo"]["name"] == "memex"
    assert json.loads(replies[2]["result"]["content"][0]["text"])["results"]
    assert replies[3]["error"]["message"].startswith("unknown tool 'nope'")
    assert errors.strip(), "debug logs were expected on stderr"


def test_an_unreachable_database_is_a_message_and_exit_status_1(tmp_path: Path) -> None:
    env = clean_env(MEMEX_DATABASE_URL="postgresql://nobody@127.0.0.1:1/none", MEMEX_DATA_DIR=str(tmp_path))
    done = subprocess.run(COMMAND, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.startswith("error: cannot reach the database") and "Traceback" not in done.stderr


# Remote: through a real `memex serve`, as its first admin's API key.


@pytest.fixture(scope="module")
def server(
    pg_server_url: str, template_url: str, model_cache_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    database_url = clone_database(pg_server_url)
    home = tmp_path_factory.mktemp("mcp-home")
    served = start_server(env=memex_env(database_url, home / "data", model_cache_dir), log=home / "serve.log")
    try:
        with served.client() as api:
            personal = next(kb for kb in api.get("/api/kbs").json() if kb["is_personal"])
            files = [("files", (name, (DATA / name).read_bytes())) for name in ("sample.md", "sample.pdf")]
            accepted = api.post(f"/api/kbs/{personal['id']}/documents", files=files)
            assert accepted.status_code == 202, accepted.text
            ids = [d["id"] for d in accepted.json()["documents"]]

            def indexed() -> bool:
                return all(api.get(f"/api/documents/{i}").json()["status"] == "indexed" for i in ids)

            wait_for(indexed, timeout=120, what="the uploads to be indexed")
        yield served
    finally:
        stop_server(served)
        drop_database(pg_server_url, database_url)


async def test_url_mode_goes_through_the_server(server: Served, tmp_path: Path) -> None:
    env = clean_env(MEMEX_DATA_DIR=str(tmp_path / "cli-data"))  # no database: the server is all it has
    async with memex_mcp(env, tmp_path / "mcp.log", "--url", server.url, "--api-key", server.key) as client:
        kbs = (await call(client, "list_knowledge_bases"))["knowledge_bases"]
        assert [kb["name"] for kb in kbs] == ["Personal"]

        results = (await call(client, "search", query="key rotation grace period", kb="Personal"))["results"]
        assert {r["path"] for r in results} == {"sample.md", "sample.pdf"}
        by_path = {r["path"]: r["document_id"] for r in results}
        markdown = await call(client, "get_document", document_id=by_path["sample.md"])
        assert markdown["text"] == (DATA / "sample.md").read_text()
        pdf = await call(client, "get_document", document_id=by_path["sample.pdf"])
        assert pdf["document"]["mime"] == "application/pdf"
        assert "API keys are rotated every 90 days." in pdf["text"]

        answer = await call(client, "ask", question="How often are API keys rotated?")
        assert "90 days" in answer["answer"] and answer["citations"]
        assert answer["conversation_id"]

        assert await fails(client, "get_document", document_id=str(uuid.uuid4())) == "document not found"
        assert await fails(client, "ask", question=" ") == "the message is empty: type a question"


async def test_url_mode_reports_a_bad_key_as_a_tool_error(server: Served, tmp_path: Path) -> None:
    env = clean_env(MEMEX_DATA_DIR=str(tmp_path / "cli-data"), MEMEX_URL=server.url, MEMEX_API_KEY="mx_wrong_key")
    async with memex_mcp(env, tmp_path / "mcp.log") as client:
        message = await fails(client, "list_knowledge_bases")
    assert message.endswith("(check MEMEX_API_KEY or --api-key)")


async def test_the_servers_own_mcp_endpoint(server: Served) -> None:
    headers = {"Authorization": f"Bearer {server.key}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        Client(streamable_http_client(f"{server.url}/mcp", http_client=http)) as client,
    ):
        results = (await call(client, "search", query="How often are API keys rotated?"))["results"]
        assert {r["path"] for r in results} == {"sample.md", "sample.pdf"}
    assert "Traceback" not in server.output()
