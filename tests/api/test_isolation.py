"""Tenant isolation: another user, by session or by key, can neither see nor touch someone's knowledge.

Every route is taken from the app's OpenAPI description, so routes added later are covered without
editing this file: their path parameters are filled with the victim's ids, every combination of them.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from memex.accounts.models import User
from memex.kbs.access import Role
from memex.kbs.models import KnowledgeBase
from memex.runtime import Runtime
from tests.factories import Factory, password_hash

# Routes left out of the sweep, and why.
SKIPPED = {
    ("post", "/api/auth/logout"): "would end the attacker's own session midway; it takes no ids",
}
# Statuses that show a route refused, or did not apply to, the foreign ids.
REFUSED = {401, 403, 404, 405, 422}


@dataclass
class Victim:
    user: User
    kb: KnowledgeBase
    personal: KnowledgeBase
    document_ids: list[uuid.UUID]
    key_id: uuid.UUID
    key: str
    word: str
    secrets: list[str]
    conversation_id: uuid.UUID

    @property
    def ids(self) -> list[str]:
        return [
            str(i)
            for i in (self.kb.id, self.personal.id, *self.document_ids, self.key_id, self.user.id, self.conversation_id)
        ]


@pytest.fixture
async def victim(make: Factory, unique: str) -> Victim:
    user = await make.user(email=f"victim-{unique}@example.com")
    kb = await make.kb(user, name=f"Victim vault {unique}")
    word = f"zorblax{unique}"
    title = f"Quarterly ledger {unique}"
    doc = await make.document(kb, name="ledger.md", text=f"# {title}\n\nThe {word} figures are confidential.\n")
    key_id, key = await make.key(user, scopes=["read", "write"])
    client = make.client(key=key)
    uploaded = await client.post(
        f"/api/kbs/{kb.id}/documents", files={"files": ("upload.md", f"# Upload {unique}\n\n{word}\n".encode())}
    )
    assert uploaded.status_code == 202, uploaded.text
    document_ids = [doc, uuid.UUID(uploaded.json()["documents"][0]["id"])]
    asked = await client.post("/api/chat", json={"message": f"What are the {word} figures?", "stream": False})
    assert asked.status_code == 200 and word in asked.json()["answer"], asked.text
    return Victim(
        conversation_id=uuid.UUID(asked.json()["conversation_id"]),
        user=user,
        kb=kb,
        personal=await make.personal_kb(user),
        document_ids=document_ids,
        key_id=key_id,
        key=key,
        word=word,
        secrets=[kb.name, title, word, user.email, f"Upload {unique}"],
    )


def _operations(app: FastAPI) -> list[tuple[str, str, dict[str, Any]]]:
    spec = app.openapi()
    return [
        (method, path, op)
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if method in {"get", "post", "put", "patch", "delete"}
    ]


def _request_kwargs(op: dict[str, Any], victim: Victim, attacker: User) -> dict[str, Any]:
    params: dict[str, str] = {}
    for p in op.get("parameters", []):
        if p["in"] != "query":
            continue
        if p["name"] in ("q", "query"):
            params[p["name"]] = victim.word
        elif p["name"] in ("kb", "kb_id"):
            params[p["name"]] = str(victim.kb.id)
    content = op.get("requestBody", {}).get("content", {})
    if "multipart/form-data" in content:
        return {"params": params, "files": {"files": ("attack.md", b"# Attack\n\noverwrite\n", "text/markdown")}}
    if "application/json" in content:
        body = {
            "name": "ledger.md",
            "description": "defaced",
            "email": attacker.email,
            "role": "editor",
            "scopes": ["read", "write"],
            "kbs": [str(victim.kb.id)],
            "is_active": False,
            "is_admin": True,
            "password": "attacker password",
            # A wrong current password: the attacker's own password stays, the route still runs its checks.
            "current_password": "not the attacker's password",
            "new_password": "attacker new password",
            "message": victim.word,
            "kb": str(victim.kb.id),
        }
        return {"params": params, "json": body}
    return {"params": params}


def _leaks(response: httpx.Response, victim: Victim) -> list[str]:
    seen = response.text + " " + " ".join(f"{k}: {v}" for k, v in response.headers.items())
    return [s for s in victim.secrets if s.lower() in seen.lower()]


async def _sweep(
    client: httpx.AsyncClient, app: FastAPI, victim: Victim, attacker: User, *, ids: list[str] | None = None
) -> int:
    calls = 0
    for method, path, op in _operations(app):
        if (method, path) in SKIPPED:
            continue
        names = re.findall(r"{(\w+)}", path)
        for values in itertools.product(ids or victim.ids, repeat=len(names)):
            url = path
            for name, value in zip(names, values, strict=True):
                url = url.replace(f"{{{name}}}", value)
            response = await client.request(method.upper(), url, **_request_kwargs(op, victim, attacker))
            calls += 1
            where = f"{method.upper()} {url} -> {response.status_code} {response.text[:200]}"
            assert not _leaks(response, victim), f"leaked {_leaks(response, victim)}: {where}"
            if names or any(p["in"] == "query" and p["name"] in ("kb", "kb_id") for p in op.get("parameters", [])):
                assert response.status_code in REFUSED, where
            assert response.status_code < 500, where
    return calls


async def _victim_untouched(runtime: Runtime, make: Factory, victim: Victim, attacker: User) -> None:
    async with runtime.engine.connect() as conn:
        kb = (
            await conn.execute(
                sa.text("SELECT name, description FROM knowledge_bases WHERE id = :id"), {"id": victim.kb.id}
            )
        ).one()
        docs = (
            await conn.execute(sa.text("SELECT count(*) FROM documents WHERE kb_id = :id"), {"id": victim.kb.id})
        ).scalar_one()
        members = (
            await conn.execute(sa.text("SELECT user_id FROM kb_members WHERE kb_id = :id"), {"id": victim.kb.id})
        ).all()
        user = (
            await conn.execute(
                sa.text("SELECT is_active, is_admin, password_hash FROM users WHERE id = :id"), {"id": victim.user.id}
            )
        ).one()
        roles = (
            (
                await conn.execute(
                    sa.text("SELECT role FROM kb_members WHERE kb_id = :id AND accepted_at IS NOT NULL"),
                    {"id": victim.kb.id},
                )
            )
            .scalars()
            .all()
        )
        unlocks = (
            await conn.execute(sa.text("SELECT count(*) FROM audit_log WHERE action = 'user_unlocked'"))
        ).scalar_one()
        attacker_admin = (
            await conn.execute(sa.text("SELECT is_admin FROM users WHERE id = :id"), {"id": attacker.id})
        ).scalar_one()
    assert (kb.name, kb.description) == (victim.kb.name, "")
    assert docs == len(victim.document_ids)
    assert [m.user_id for m in members] == [victim.user.id]
    assert (user.is_active, user.is_admin, attacker_admin) == (True, False, False)
    # Neither the password (changed or reset) nor a role (changed) moved, and no account was unlocked.
    assert (user.password_hash, roles, unlocks) == (password_hash(), ["owner"], 0)
    async with runtime.engine.connect() as conn:
        conversation = (
            await conn.execute(
                sa.text(
                    "SELECT title, (SELECT count(*) FROM messages WHERE conversation_id = c.id) AS n "
                    "FROM conversations c WHERE id = :id"
                ),
                {"id": victim.conversation_id},
            )
        ).one()
    assert conversation.title.startswith("What are the zorblax") and conversation.n == 2
    assert (await make.client(key=victim.key).get(f"/api/kbs/{victim.kb.id}")).status_code == 200


async def test_another_user_can_neither_see_nor_touch_anything(
    make: Factory, app: FastAPI, runtime: Runtime, victim: Victim, bob: User
) -> None:
    _, key = await make.key(bob, scopes=["read", "write"])
    # The document page's route hands out whole documents: make sure the sweep reaches it.
    assert ("get", "/api/documents/{document_id}/text") in {(m, p) for m, p, _ in _operations(app)}
    for client in (await make.as_user(bob), make.client(key=key)):
        calls = await _sweep(client, app, victim, bob)
        assert calls > 50  # the sweep really ran over the routes
    await _victim_untouched(runtime, make, victim, bob)


async def test_an_admin_cannot_read_a_users_personal_kb(
    make: Factory, app: FastAPI, runtime: Runtime, victim: Victim, admin: User, unique: str
) -> None:
    """Admins manage users and KBs, but a personal KB's content stays its owner's, route by route."""
    word, title, name = f"diarist{unique}", f"Private diary {unique}", f"diary-{unique}.md"
    doc = await make.document(victim.personal, name=name, text=f"# {title}\n\nThe {word} appointment is on Tuesday.\n")
    private = dataclasses.replace(victim, kb=victim.personal, word=word, secrets=[title, word, name])
    _, key = await make.key(admin, scopes=["read", "write", "admin"])
    for client in (await make.as_user(admin), make.client(key=key)):
        calls = await _sweep(client, app, private, admin, ids=[str(victim.personal.id), str(doc)])
        assert calls > 50
    async with runtime.engine.connect() as conn:
        kept = (
            await conn.execute(sa.text("SELECT count(*) FROM documents WHERE kb_id = :id"), {"id": victim.personal.id})
        ).scalar_one()
    assert kept == 1


async def test_search_finds_nothing_of_another_user(make: Factory, victim: Victim, bob: User) -> None:
    own = await make.client(key=victim.key).get("/api/search", params={"q": victim.word, "mode": "keyword"})
    assert own.status_code == 200 and own.json()["results"], (
        "the victim's word must be findable, or this proves nothing"
    )
    attacker = await make.as_user(bob)
    for mode in ("hybrid", "keyword", "vector"):
        response = await attacker.get("/api/search", params={"q": victim.word, "mode": mode})
        assert response.status_code == 200 and response.json() == {"results": [], "hidden": 0, "next_offset": None}
    aimed = await attacker.get("/api/search", params={"q": victim.word, "kb": str(victim.kb.id)})
    assert aimed.status_code == 404 and aimed.json() == {"detail": "knowledge base not found"}


async def test_a_read_key_cannot_write(make: Factory, victim: Victim) -> None:
    _, read = await make.key(victim.user, scopes=["read"])
    client = make.client(key=read)
    assert (await client.get(f"/api/kbs/{victim.kb.id}/documents")).status_code == 200
    upload = await client.post(f"/api/kbs/{victim.kb.id}/documents", files={"files": ("x.md", b"# X\n")})
    assert upload.status_code == 403 and upload.json() == {"detail": "this API key lacks the 'write' scope"}
    assert (await client.delete(f"/api/documents/{victim.document_ids[0]}")).status_code == 403
    assert (await client.patch(f"/api/kbs/{victim.kb.id}", json={"name": "renamed"})).status_code == 403


async def test_a_key_limited_to_one_kb_cannot_touch_another(make: Factory, victim: Victim) -> None:
    other = await make.kb(victim.user, name="other")
    other_doc = await make.document(other, name="other.md", text=f"# Other\n\n{victim.word} elsewhere.\n")
    _, limited = await make.key(victim.user, scopes=["read", "write"], kbs=[victim.kb.id])
    client = make.client(key=limited)

    assert (await client.get(f"/api/kbs/{other.id}/documents")).status_code == 404
    assert (await client.post(f"/api/kbs/{other.id}/documents", files={"files": ("x.md", b"# X\n")})).status_code == 404
    assert (await client.get(f"/api/documents/{other_doc}")).status_code == 404
    assert (await client.delete(f"/api/documents/{other_doc}")).status_code == 404
    assert (await client.delete(f"/api/kbs/{other.id}")).status_code == 404
    results = (await client.get("/api/search", params={"q": victim.word, "mode": "keyword"})).json()["results"]
    assert results and {r["kb"] for r in results} == {str(victim.kb.id)}
    assert (await client.get("/api/search", params={"q": victim.word, "kb": str(other.id)})).status_code == 404


async def test_expired_and_revoked_keys_reach_nothing(make: Factory, runtime: Runtime, victim: Victim) -> None:
    expiring_id, expiring = await make.key(victim.user, expires_at=datetime.now(UTC) + timedelta(hours=1))
    async with runtime.engine.begin() as conn:
        await conn.execute(
            sa.text("UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = :id"), {"id": expiring_id}
        )
    revoked_id, revoked = await make.key(victim.user)
    assert (await make.client(key=victim.key).delete(f"/api/keys/{revoked_id}")).status_code == 204

    for key, detail in ((expiring, "API key expired"), (revoked, "API key revoked")):
        client = make.client(key=key)
        for response in (
            await client.get(f"/api/kbs/{victim.kb.id}/documents"),
            await client.get("/api/search", params={"q": victim.word}),
            await client.get(f"/api/documents/{victim.document_ids[0]}/file"),
        ):
            assert response.status_code == 401 and response.json() == {"detail": detail}


async def test_viewers_and_editors_stay_within_their_role(make: Factory, victim: Victim, bob: User) -> None:
    await make.share(victim.kb, bob, Role.viewer)
    viewer = await make.as_user(bob)
    assert (await viewer.get(f"/api/documents/{victim.document_ids[0]}")).status_code == 200
    text = await viewer.get(f"/api/documents/{victim.document_ids[0]}/text")
    assert text.status_code == 200 and victim.word in text.json()["source"]
    assert (
        await viewer.post(f"/api/kbs/{victim.kb.id}/documents", files={"files": ("x.md", b"# X\n")})
    ).status_code == 403
    assert (await viewer.delete(f"/api/documents/{victim.document_ids[0]}")).status_code == 403

    await make.share(victim.kb, bob, Role.editor)
    share = await viewer.post(f"/api/kbs/{victim.kb.id}/members", json={"email": bob.email, "role": "editor"})
    assert share.status_code == 403
    assert (await viewer.delete(f"/api/kbs/{victim.kb.id}")).status_code == 403
    assert (
        await viewer.post(f"/api/kbs/{victim.kb.id}/documents", files={"files": ("x.md", b"# X\n")})
    ).status_code == 202
