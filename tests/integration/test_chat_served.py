"""Chat through a real `memex serve` and a real model double: the official OpenAI SDK against /v1, a client that
leaves, heartbeats, and `memex chat` locally and with --url."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import clone_database, drop_database
from tests.doubles.openai_server import OpenAIDouble
from tests.doubles.script import reply
from tests.integration.test_serve import Served, memex_env, start_server, stop_server, wait_for

HANDBOOK = """# Travel handbook

## Expenses

Travel expenses are refunded within 14 days when the receipts are uploaded to the finance portal.

## Booking

Flights must be booked through the travel desk at least three weeks ahead.
"""
SECRET = "# Salaries\n\nThe zebrafish bonus pool is 40000 euros this year.\n"


@pytest.fixture(scope="module")
def served(
    pg_server_url: str,
    template_url: str,
    model_cache_dir: Path,
    openai_server: OpenAIDouble,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Served]:
    database_url = clone_database(pg_server_url)
    home = tmp_path_factory.mktemp("chat-serve")
    env = memex_env(
        database_url,
        home / "data",
        model_cache_dir,
        MEMEX_LLM_PROVIDER="openai",
        MEMEX_LLM_BASE_URL=openai_server.base_url,
        MEMEX_LLM_MODEL="double-model",
        MEMEX_LLM_API_KEY="sk-served-secret",
        MEMEX_CHAT_HEARTBEAT_SECONDS="0.2",
    )
    served = start_server(env=env, log=home / "serve.log")
    served.env = env  # type: ignore[attr-defined]
    try:
        with served.client() as client:
            kb = client.post("/api/kbs", json={"name": "handbook"}).json()
            upload = client.post(f"/api/kbs/{kb['id']}/documents", files={"files": ("travel.md", HANDBOOK.encode())})
            assert upload.status_code == 202, upload.text
            doc = upload.json()["documents"][0]["id"]
            wait_for(
                lambda: client.get(f"/api/documents/{doc}").json()["status"] == "indexed",
                timeout=120,
                what="the handbook to be indexed",
            )
        yield served
    finally:
        stop_server(served)
        drop_database(pg_server_url, database_url)


def _sdk(served: Served, key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{served.url}/v1", api_key=key or served.key, max_retries=0)


def test_the_openai_sdk_chats_with_the_knowledge_bases(served: Served, openai_double: OpenAIDouble) -> None:
    with _sdk(served) as client:
        ids = [m.id for m in client.models.list()]
        assert ids == ["memex", "memex/handbook"] or set(ids) >= {"memex", "memex/handbook"}

        completion = client.chat.completions.create(
            model="memex", messages=[{"role": "user", "content": "When are travel expenses refunded?"}]
        )
        content = completion.choices[0].message.content or ""
        assert content.startswith("Travel expenses are refunded within 14 days")
        assert "\n\nSources:\n[1] Travel handbook — travel.md › Travel handbook › Expenses" in content
        extra = completion.model_extra or {}
        assert extra["citations"][0]["path"] == "travel.md" and extra["sentences"][0]["supported"] is True
        assert completion.usage is not None and completion.usage.completion_tokens > 0

        stream = client.chat.completions.create(
            model="memex/handbook",
            messages=[{"role": "user", "content": "How early must flights be booked?"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        pieces, usage, finish = [], None, None
        for chunk in stream:
            if chunk.usage is not None:
                usage = chunk.usage
            for choice in chunk.choices:
                pieces.append(choice.delta.content or "")
                finish = choice.finish_reason or finish
        streamed = "".join(pieces)
        assert streamed.startswith("Flights must be booked through the travel desk") and "Sources:" in streamed
        assert finish == "stop" and usage is not None and usage.total_tokens > 0

        with pytest.raises(openai.NotFoundError, match="no knowledge base named 'nope'"):
            client.chat.completions.create(model="memex/nope", messages=[{"role": "user", "content": "hi"}])
        with pytest.raises(openai.UnprocessableEntityError, match="the message is empty"):
            client.chat.completions.create(model="memex", messages=[{"role": "user", "content": " "}])
    with pytest.raises(openai.AuthenticationError):
        _sdk(served, key="mx_nope_nope").models.list()


async def test_the_async_openai_sdk_streams_and_answers(served: Served, openai_double: OpenAIDouble) -> None:
    async with openai.AsyncOpenAI(base_url=f"{served.url}/v1", api_key=served.key, max_retries=0) as client:
        whole = await client.chat.completions.create(
            model="memex",
            messages=[
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Tell me about expenses."},
                {"role": "assistant", "content": "Expenses are refunded."},
                {"role": "user", "content": "When are travel expenses refunded?"},
            ],
        )
        assert "14 days" in (whole.choices[0].message.content or "")
        # The client's earlier turns went to the model as history.
        sent = openai_double.generations[-1].body["messages"]
        assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
        stream = await client.chat.completions.create(
            model="memex", messages=[{"role": "user", "content": "How early must flights be booked?"}], stream=True
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        assert "three weeks ahead" in text


def test_a_key_sees_only_its_own_knowledge_bases_through_v1(served: Served, openai_double: OpenAIDouble) -> None:
    with httpx.Client(base_url=served.url, timeout=30) as browser:
        admin = browser.post("/api/auth/login", json={"email": "admin@example.com", "password": "serve test password"})
        csrf = {"X-CSRF-Token": admin.json()["csrf_token"]}
        created = browser.post("/api/admin/users", json={"email": "eve@example.com"}, headers=csrf).json()
    with httpx.Client(base_url=served.url, timeout=30) as eve:
        login = eve.post("/api/auth/login", json={"email": "eve@example.com", "password": created["password"]})
        key = eve.post(
            "/api/keys", json={"name": "v1", "scopes": ["read"]}, headers={"X-CSRF-Token": login.json()["csrf_token"]}
        ).json()["key"]
    with _sdk(served, key=key) as client:
        assert "memex/handbook" not in [m.id for m in client.models.list()]
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model="memex/handbook", messages=[{"role": "user", "content": "refunds?"}])
        answer = client.chat.completions.create(
            model="memex", messages=[{"role": "user", "content": "When are travel expenses refunded?"}]
        )
        content = answer.choices[0].message.content or ""
        assert "14 days" not in content and "travel.md" not in content
        assert (answer.model_extra or {})["citations"] == []


def test_a_client_that_leaves_cancels_the_model_request(served: Served, openai_double: OpenAIDouble) -> None:
    openai_double.push(reply("Travel expenses are refunded quickly [1]. " * 40, chunks=80, token_delay=0.25))
    with (
        httpx.Client(base_url=served.url, headers={"Authorization": f"Bearer {served.key}"}, timeout=30) as client,
        client.stream("POST", "/api/chat", json={"message": "When are expenses refunded?"}) as response,
    ):
        for line in response.iter_lines():
            if line.startswith("event: token"):
                break
    wait_for(lambda: openai_double.disconnected == 1, timeout=10, what="the model request to be cancelled")
    assert openai_double.active == 0 and openai_double.finished == 0
    # What was said before the client left is kept, marked as stopped.
    with served.client() as client:

        def stopped() -> dict[str, object] | None:
            latest = client.get("/api/conversations").json()["conversations"][0]
            if latest["title"] != "When are expenses refunded?" or latest["message_count"] != 2:
                return None
            found: dict[str, object] = client.get(f"/api/conversations/{latest['id']}").json()["messages"][1]
            return found

        answer = wait_for(stopped, timeout=10, what="the stopped answer to be saved")
    assert answer["error"] == "stopped before the answer was complete"
    assert str(answer["content"]).startswith("Travel") and len(str(answer["content"])) < 200


def test_heartbeats_keep_a_slow_stream_alive(served: Served, openai_double: OpenAIDouble) -> None:
    openai_double.push(reply("Travel expenses are refunded within 14 days [1].", first_token_delay=1.0))
    started = time.monotonic()
    with httpx.Client(base_url=served.url, headers={"Authorization": f"Bearer {served.key}"}, timeout=30) as client:
        body = client.post("/api/chat", json={"message": "When are expenses refunded?"}).text
    assert time.monotonic() - started >= 1.0
    before_first_token = body.split("event: token")[0]
    assert ": ping" in before_first_token, body[:500]


def _memex(served: Served, *args: str) -> subprocess.CompletedProcess[str]:
    entry = "from memex.cli.main import main; main()"
    env = dict(served.env)  # type: ignore[attr-defined]
    return subprocess.run(
        [sys.executable, "-c", entry, "chat", *args], env=env, capture_output=True, text=True, timeout=180
    )


def test_memex_chat_answers_locally_and_through_a_server(served: Served, openai_double: OpenAIDouble) -> None:
    question = "When are travel expenses refunded?"
    for where in ((), ("--url", served.url, "--api-key", served.key)):
        done = _memex(served, question, "--json", *where)
        assert done.returncode == 0, done.stderr
        body = json.loads(done.stdout)
        assert (
            body["answer"].startswith("Travel expenses are refunded within 14 days") and body["model"] == "double-model"
        )
        assert body["citations"][0]["path"] == "travel.md"

        openai_double.push(reply("Travel expenses are refunded within 14 days [1]. Pigs can fly [1]."))
        shown = _memex(served, question, "--kb", "handbook", *where)
        assert shown.returncode == 0, shown.stderr
        assert "Travel expenses are refunded within 14 days [1]." in shown.stdout
        assert "Sources" in shown.stdout and "[1] travel.md" in shown.stdout
        assert "not supported by its sources: Pigs can fly [1]." in shown.stdout

    missing = _memex(served, question, "--kb", "nope")
    assert missing.returncode == 1 and "no knowledge base named 'nope'" in missing.stderr
    empty = _memex(served, "  ", "--url", served.url, "--api-key", served.key)
    assert empty.returncode == 1 and "the message is empty" in empty.stderr


def test_an_interactive_session_keeps_the_conversation(served: Served, openai_double: OpenAIDouble) -> None:
    entry = "from memex.cli.main import main; main()"
    openai_double.push(reply("Travel expenses are refunded within 14 days [1]."))
    openai_double.push(reply("How early must flights be booked?"))  # the follow-up, rewritten
    openai_double.push(reply("Flights must be booked three weeks ahead [1]."))
    done = subprocess.run(
        [sys.executable, "-c", entry, "chat"],
        input="When are travel expenses refunded?\n\nand flights?\n",  # then end of input: Ctrl-D
        env=dict(served.env),  # type: ignore[attr-defined]
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    assert "Ctrl-D leaves" in done.stdout
    assert "refunded within 14 days [1]." in done.stdout and "three weeks ahead [1]." in done.stdout
    rewrite, answer = openai_double.generations[-2:]
    # The second question went out with the first turn as history, in one conversation.
    assert [m["role"] for m in answer.body["messages"]] == ["system", "user", "assistant", "user"]
    assert "standalone" in json.dumps(rewrite.body)

    report = subprocess.run(
        [sys.executable, "-c", entry, "usage", "--json", "--days", "1"],
        env=dict(served.env),  # type: ignore[attr-defined]
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert report.returncode == 0, report.stderr
    rows = json.loads(report.stdout)["rows"]
    local = [r for r in rows if r["email"] is None and r["model"] == "double-model"]
    assert local and local[0]["requests"] >= 2 and local[0]["prompt_tokens"] > 0
