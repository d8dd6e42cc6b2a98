"""Restricted API keys: one limited to some KBs, or without every scope of its user, manages no keys; a write-only
key gets back ids and status, never what the knowledge base holds."""

from __future__ import annotations

import uuid

import pytest

from memex.accounts.models import User
from memex.jobs.app import build_app, run_worker
from memex.runtime import Runtime
from tests.factories import Factory

RESTRICTED = (
    "this API key is restricted (to some knowledge bases or scopes) and cannot manage API keys: "
    "use a session or a key with all of your account's scopes"
)


async def test_restricted_keys_cannot_manage_keys(make: Factory, alice: User, admin: User) -> None:
    team = await make.kb(alice, name="team")
    full_id, _ = await make.key(alice, scopes=["read", "write"])
    for user, scopes, kbs in (
        (alice, ("read", "write"), [team.id]),
        (alice, ("write",), None),
        (admin, ("read", "write"), None),  # an admin's key without the admin scope is narrower than its user
    ):
        _, key = await make.key(user, scopes=scopes, kbs=kbs)
        client = make.client(key=key)
        for response in (
            await client.post("/api/keys", json={"name": "child", "scopes": ["write"]}),
            await client.delete(f"/api/keys/{full_id}"),
        ):
            assert response.status_code == 403 and response.json() == {"detail": RESTRICTED}, (scopes, kbs)
        if "read" in scopes:
            listed = await client.get("/api/keys")
            assert listed.status_code == 403 and listed.json() == {"detail": RESTRICTED}
    assert full_id in {uuid.UUID(k["id"]) for k in (await (await make.as_user(alice)).get("/api/keys")).json()}

    # Keys with all of their user's rights, and sessions, still manage keys.
    _, alice_full = await make.key(alice, scopes=["read", "write"])
    assert (await make.client(key=alice_full).get("/api/keys")).status_code == 200
    _, root_full = await make.key(admin, scopes=["admin"])
    assert (
        await make.client(key=root_full).post("/api/keys", json={"name": "x", "scopes": ["read"]})
    ).status_code == 201
    assert (await make.client(key=alice_full).delete(f"/api/keys/{full_id}")).status_code == 204


@pytest.fixture
async def write_only(make: Factory, alice: User) -> tuple[uuid.UUID, str]:
    kb = await make.kb(alice, name="inbox")
    _, key = await make.key(alice, scopes=["write"])
    return kb.id, key


async def drain(runtime: Runtime) -> None:
    app = build_app(runtime)
    async with app.open_async():
        await run_worker(app, concurrency=1, wait=False)


async def test_a_write_only_key_reads_nothing_back(
    make: Factory, runtime: Runtime, alice: User, write_only: tuple[uuid.UUID, str]
) -> None:
    kb_id, key = write_only
    secret = "# Salaries\n\nThe zanzibrot figures are confidential.\n"
    kb = await make.get_kb(kb_id)
    existing = await make.document(kb, name="salaries.md", text=secret)
    client = make.client(key=key)

    # An upload of content the KB already holds is queued again, not reported as indexed.
    same = await client.post(f"/api/kbs/{kb_id}/documents", files={"files": ("salaries.md", secret.encode())})
    assert same.status_code == 202 and same.json() == {
        "documents": [{"id": str(existing), "name": "salaries.md", "status": "queued"}],
        "rejected": [],
    }
    new = await client.post(f"/api/kbs/{kb_id}/documents", files={"files": ("notes/new.md", b"# New\n\nHello.\n")})
    [accepted] = new.json()["documents"]
    assert accepted["name"] == "notes/new.md" and accepted["status"] == "queued"
    await drain(runtime)

    renamed = await client.patch(f"/api/documents/{existing}", json={"name": "archive/salaries.md"})
    assert renamed.status_code == 200 and renamed.json() == {"id": str(existing), "status": "indexed"}
    assert (await client.get(f"/api/documents/{existing}")).status_code == 403

    # A key that may read still gets the whole document back.
    _, both = await make.key(alice, scopes=["read", "write"])
    full = await make.client(key=both).patch(f"/api/documents/{existing}", json={"name": "salaries.md"})
    assert full.status_code == 200 and full.json()["title"] == "Salaries" and full.json()["chunk_count"] >= 1
