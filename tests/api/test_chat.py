"""Chat without a language model (the default): extractive answers, conversations, usage, bad input, isolation."""

from __future__ import annotations

import json
from typing import Any

import httpx

from memex.accounts.models import User
from memex.chat.extractive import NO_MODEL_INTRO
from tests.factories import Factory

ASPIRIN = """# Aspirin

Aspirin reduces fever and relieves mild pain. It thins the blood, which lowers the risk of heart attacks.

## Side effects

Aspirin can cause stomach bleeding and ulcers in some people. Children with viral infections should not take it
because of Reye's syndrome.
"""
COFFEE = """# Coffee

Coffee contains caffeine, a stimulant that keeps people awake. Most adults can drink four cups a day safely.
"""


def sse_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    """The (event, data) pairs of a Server-Sent Events body; comments (heartbeats) are skipped."""
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        name, data = "message", []
        for line in block.splitlines():
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
        if data:
            events.append((name, json.loads("\n".join(data))))
    return events


async def _alice_with_documents(make: Factory, alice: User) -> httpx.AsyncClient:
    kb = await make.personal_kb(alice)
    await make.document(kb, name="aspirin.md", text=ASPIRIN)
    await make.document(kb, name="coffee.md", text=COFFEE)
    return await make.as_user(alice)


async def test_an_extractive_answer_cites_the_passages_it_quotes(make: Factory, alice: User) -> None:
    client = await _alice_with_documents(make, alice)
    response = await client.post("/api/chat", json={"message": "What does aspirin do?", "stream": False})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["answer"].startswith(NO_MODEL_INTRO)
    assert body["model"] == "extractive" and body["usage"] == {"prompt_tokens": 0, "completion_tokens": 0, "cost": 0}
    cited = [s for s in body["sentences"] if s["citations"]]
    assert len(cited) >= 2 and all(s["supported"] is True for s in cited)
    assert "Aspirin reduces fever and relieves mild pain." in body["answer"]
    by_n = {c["n"]: c for c in body["citations"]}
    for sentence in cited:
        for n in sentence["citations"]:
            assert by_n[n]["path"] == "aspirin.md" and by_n[n]["quote"]
            assert by_n[n]["kb_name"], "a citation names its knowledge base"
            assert body["answer"][sentence["start"] : sentence["end"]] == sentence["text"]
    assert {"retrieval_ms", "ttft_ms", "generation_ms", "grounding_ms"} <= set(body["timings"])
    assert "error" not in body


async def test_the_stream_sends_tokens_then_citations_then_done(make: Factory, alice: User) -> None:
    client = await _alice_with_documents(make, alice)
    response = await client.post("/api/chat", json={"message": "How much coffee is safe?"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    names = [name for name, _ in events]
    assert names[0] == "token" and names[-2:] == ["citations", "done"] and set(names) == {"token", "citations", "done"}
    answer = "".join(data["text"] for name, data in events if name == "token")
    assert "four cups a day" in answer
    citations = events[-2][1]["citations"]
    assert citations and citations[0]["path"] == "coffee.md"
    done = events[-1][1]
    assert done["model"] == "extractive" and done["conversation_id"] and done["message_id"]


async def test_a_follow_up_is_answered_in_the_light_of_the_previous_question(make: Factory, alice: User) -> None:
    client = await _alice_with_documents(make, alice)
    first = (await client.post("/api/chat", json={"message": "What does aspirin do?", "stream": False})).json()
    follow = await client.post(
        "/api/chat",
        json={"message": "and its side effects?", "conversation_id": first["conversation_id"], "stream": False},
    )
    body = follow.json()
    assert follow.status_code == 200 and body["conversation_id"] == first["conversation_id"]
    assert any(c["heading"].endswith("Side effects") for c in body["citations"]), body["citations"]

    stored = (await client.get(f"/api/conversations/{first['conversation_id']}")).json()
    assert [m["role"] for m in stored["messages"]] == ["user", "assistant", "user", "assistant"]
    assert stored["messages"][2]["content"] == "and its side effects?"
    assert stored["messages"][3]["citations"] == body["citations"]
    assert stored["messages"][3]["model"] == "extractive" and stored["title"] == "What does aspirin do?"


async def test_bad_messages_get_a_clear_422(make: Factory, alice: User) -> None:
    client = await _alice_with_documents(make, alice)
    limit = make.runtime.settings.max_query_chars
    for message, detail in (
        ("", "the message is empty: type a question"),
        ("   \n ", "the message is empty: type a question"),
        ("x" * (limit + 1), f"the message is {limit + 1} characters long; the limit is {limit}"),
    ):
        response = await client.post("/api/chat", json={"message": message})
        assert response.status_code == 422 and response.json()["detail"].startswith(detail), response.text
    missing = await client.post("/api/chat", json={})
    assert missing.status_code == 422 and "message" in missing.json()["detail"]
    assert (await client.get("/api/conversations")).json() == {"conversations": []}


async def test_unknown_conversations_and_kbs_are_404(make: Factory, alice: User, bob: User) -> None:
    client = await _alice_with_documents(make, alice)
    unknown = "00000000-0000-4000-8000-000000000000"
    for body in ({"conversation_id": unknown}, {"kb": unknown}, {"kb": [unknown]}):
        response = await client.post("/api/chat", json={"message": "aspirin?", **body})
        assert response.status_code == 404, response.text
    bobs_kb = await make.kb(bob, name="bob's")
    response = await client.post("/api/chat", json={"message": "aspirin?", "kb": str(bobs_kb.id)})
    assert response.status_code == 404 and response.json() == {"detail": "knowledge base not found"}
    for method in ("GET", "PATCH", "DELETE"):
        body = {"title": "x"} if method == "PATCH" else None
        response = await client.request(method, f"/api/conversations/{unknown}", json=body)
        assert response.status_code == 404 and response.json() == {"detail": "conversation not found"}


async def test_chat_never_cites_what_the_caller_may_not_read(make: Factory, alice: User, bob: User) -> None:
    """Both users hold a document that answers the question: each answer cites only its asker's."""
    alices = await make.personal_kb(alice)
    bobs = await make.personal_kb(bob)
    await make.document(alices, name="alice-vault.md", text="# Vault\n\nThe vault code is 4417 and opens at noon.\n")
    await make.document(bobs, name="bob-vault.md", text="# Vault\n\nThe vault code is 9921 and opens at dawn.\n")
    _, bob_key = await make.key(bob, scopes=["read"])
    for client in (await make.as_user(bob), make.client(key=bob_key)):
        body = (await client.post("/api/chat", json={"message": "What is the vault code?", "stream": False})).json()
        assert "9921" in body["answer"] and "4417" not in json.dumps(body)
        assert {c["path"] for c in body["citations"]} == {"bob-vault.md"}
        assert {c["kb"] for c in body["citations"]} == {str(bobs.id)}


async def test_conversations_belong_to_their_user(make: Factory, alice: User, bob: User, admin: User) -> None:
    client = await _alice_with_documents(make, alice)
    body = (await client.post("/api/chat", json={"message": "What does aspirin do?", "stream": False})).json()
    conversation = body["conversation_id"]
    listed = (await client.get("/api/conversations")).json()["conversations"]
    assert [c["id"] for c in listed] == [conversation] and listed[0]["message_count"] == 2

    for other in (bob, admin):  # admins included: a conversation is private
        intruder = await make.as_user(other)
        assert (await intruder.get("/api/conversations")).json() == {"conversations": []}
        assert (await intruder.get(f"/api/conversations/{conversation}")).status_code == 404
        assert (await intruder.patch(f"/api/conversations/{conversation}", json={"title": "mine"})).status_code == 404
        assert (await intruder.delete(f"/api/conversations/{conversation}")).status_code == 404
        follow = await intruder.post("/api/chat", json={"message": "more?", "conversation_id": conversation})
        assert follow.status_code == 404

    renamed = await client.patch(f"/api/conversations/{conversation}", json={"title": "  Aspirin   notes "})
    assert renamed.status_code == 200 and renamed.json()["title"] == "Aspirin notes"
    assert (await client.patch(f"/api/conversations/{conversation}", json={"title": ""})).status_code == 422
    assert (await client.delete(f"/api/conversations/{conversation}")).status_code == 204
    assert (await client.get(f"/api/conversations/{conversation}")).status_code == 404


async def test_usage_is_counted_per_user_and_model_for_admins(make: Factory, alice: User, admin: User) -> None:
    client = await _alice_with_documents(make, alice)
    for question in ("What does aspirin do?", "How much coffee is safe?"):
        assert (await client.post("/api/chat", json={"message": question, "stream": False})).status_code == 200
    assert (await client.get("/api/admin/usage")).status_code == 403
    report = (await (await make.as_user(admin)).get("/api/admin/usage", params={"days": 7})).json()
    assert report["days"] == 7 and report["totals"]["requests"] == 2
    (row,) = report["rows"]
    assert (row["email"], row["provider"], row["model"], row["requests"], row["cost"]) == (
        alice.email,
        "none",
        "extractive",
        2,
        0,
    )
    assert (await (await make.as_user(admin)).get("/api/admin/usage", params={"days": 0})).status_code == 422


async def test_nothing_found_says_so(make: Factory, alice: User) -> None:
    client = await make.as_user(alice)
    body = (await client.post("/api/chat", json={"message": "What does aspirin do?", "stream": False})).json()
    assert body["answer"] == "I found nothing about this in your documents."
    assert body["citations"] == [] and body["sentences"][0]["supported"] is None


async def test_readiness_reports_the_chat_model_without_requiring_it(make: Factory) -> None:
    body = (await make.client().get("/api/health/ready")).json()
    llm = body["components"]["llm"]
    assert llm["ok"] is True and "extractive" in llm["detail"] and llm["required"] is False
