"""A database connection dropped in the middle of a request (a restart, a failover, an administrator ending it):
503 with a clear detail and Retry-After, also where the failure surfaces inside a stream or a job enqueue."""

from __future__ import annotations

import uuid

import httpx
import pytest

from memex import jobs
from memex.accounts.models import User
from memex.db import failures
from memex.runtime import Runtime
from tests.api.test_chat import ASPIRIN, sse_events
from tests.api.test_mcp_http import fails, mcp_client
from tests.factories import BASE_URL, Factory
from tests.faults.dropped import dropped_mid_request

UNAVAILABLE = "the database is unavailable: try again in a few seconds"
# Chat saves the exchange last, after the answer was streamed: the failure comes from inside the stream.
WHILE_SAVING = "LOCK TABLE messages IN ACCESS EXCLUSIVE MODE"
WHILE_SEARCHING = "LOCK TABLE chunks IN ACCESS EXCLUSIVE MODE"


async def _client(make: Factory, alice: User) -> httpx.AsyncClient:
    """Alice's key-authenticated client, which sees a 500 as a response (not as the app's exception)."""
    kb = await make.personal_kb(alice)
    await make.document(kb, name="aspirin.md", text=ASPIRIN)
    _, key = await make.key(alice)
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=make.app, raise_app_exceptions=False),
        base_url=BASE_URL,
        headers={"Authorization": f"Bearer {key}"},
    )
    make.clients.append(client)
    return client


def _is_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.json()["detail"] == UNAVAILABLE
    assert response.headers["retry-after"] == "5"


@pytest.mark.parametrize(
    ("path", "lock"),
    [
        ("/api/kbs", "LOCK TABLE knowledge_bases IN ACCESS EXCLUSIVE MODE"),
        ("/api/search?q=aspirin", WHILE_SEARCHING),
        ("/api/conversations", "LOCK TABLE conversations IN ACCESS EXCLUSIVE MODE"),
    ],
)
async def test_a_read_whose_connection_drops_answers_503(
    path: str, lock: str, database_url: str, make: Factory, alice: User
) -> None:
    client = await _client(make, alice)
    async with dropped_mid_request(database_url, lock) as dropped:
        response = await client.get(path)
    assert dropped.statements, "nothing waited for the lock"
    _is_unavailable(response)
    assert (await client.get(path)).status_code == 200  # the pool replaced the connection


@pytest.mark.parametrize("lock", [WHILE_SEARCHING, WHILE_SAVING])
async def test_a_chat_answer_whose_connection_drops_answers_503(
    lock: str, database_url: str, make: Factory, alice: User
) -> None:
    client = await _client(make, alice)
    async with dropped_mid_request(database_url, lock) as dropped:
        response = await client.post("/api/chat", json={"message": "What does aspirin do?", "stream": False})
    assert dropped.statements
    _is_unavailable(response)


async def test_a_chat_stream_whose_connection_drops_ends_with_the_reason(
    database_url: str, make: Factory, alice: User
) -> None:
    client = await _client(make, alice)
    async with dropped_mid_request(database_url, WHILE_SAVING) as dropped:
        response = await client.post("/api/chat", json={"message": "What does aspirin do?"})
    assert dropped.statements and dropped.statements[0].startswith("INSERT INTO messages")
    assert response.status_code == 200  # the stream had begun: the failure is its last event
    events = sse_events(response.text)
    assert events[-1] == ("error", {"detail": UNAVAILABLE})
    assert "done" not in [name for name, _ in events]


async def test_an_openai_completion_whose_connection_drops_answers_503(
    database_url: str, make: Factory, alice: User
) -> None:
    client = await _client(make, alice)
    body = {"model": "memex", "messages": [{"role": "user", "content": "What does aspirin do?"}]}
    async with dropped_mid_request(database_url, WHILE_SEARCHING):
        response = await client.post("/v1/chat/completions", json=body)
    _is_unavailable(response)
    assert response.json()["error"]["message"] == UNAVAILABLE
    async with dropped_mid_request(database_url, WHILE_SEARCHING):
        streamed = await client.post("/v1/chat/completions", json=body | {"stream": True})
    assert f"({UNAVAILABLE})" in streamed.text


async def test_an_mcp_tool_whose_connection_drops_says_so(database_url: str, make: Factory, alice: User) -> None:
    await _client(make, alice)
    _, key = await make.key(alice)
    async with mcp_client(make.app, key) as mcp, dropped_mid_request(database_url, WHILE_SEARCHING):
        assert await fails(mcp, "search", query="aspirin") == UNAVAILABLE


async def test_an_upload_whose_connection_drops_while_enqueueing_answers_503(
    database_url: str, make: Factory, alice: User
) -> None:
    client = await _client(make, alice)
    kb = await make.personal_kb(alice)
    # SHARE mode lets the queue be read but not written: the drop lands on procrastinate's INSERT of the job.
    async with dropped_mid_request(database_url, "LOCK TABLE procrastinate_jobs IN SHARE MODE") as dropped:
        response = await client.post(f"/api/kbs/{kb.id}/documents", files=[("files", ("heron.md", b"# Herons"))])
    assert "procrastinate_defer_jobs" in dropped.statements[0]
    _is_unavailable(response)
    listed = (await client.get(f"/api/kbs/{kb.id}/documents")).json()["documents"]
    assert "heron.md" not in {d["name"] for d in listed}  # nothing half-recorded: the upload may be sent again


async def test_procrastinates_wrapped_error_is_a_database_failure(database_url: str, runtime: Runtime) -> None:
    """procrastinate wraps psycopg's error in its own ConnectorException, which is not a driver error class."""
    caught: BaseException | None = None
    async with dropped_mid_request(database_url, "LOCK TABLE procrastinate_jobs IN SHARE MODE"):
        conn = await runtime.engine.connect()
        try:
            await jobs.defer_ingest(conn, document_ids=[uuid.uuid4()])
        except Exception as exc:
            caught = exc
        finally:
            await conn.invalidate()  # it is gone: no rollback to send
            await conn.close()
    assert caught is not None and not isinstance(caught, failures.DATABASE_ERRORS)
    found = failures.unavailable(caught)
    assert found is not None and found.message == UNAVAILABLE
