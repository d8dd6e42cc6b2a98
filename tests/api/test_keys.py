"""API keys: shown once and stored hashed, scopes, KB limits, expiry and revocation with precise answers."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from memex.accounts.models import User
from memex.kbs.access import Role
from memex.runtime import Runtime
from tests.factories import Factory


async def test_a_key_is_shown_once_and_stored_as_a_hash(make: Factory, alice: User, runtime: Runtime) -> None:
    client = await make.as_user(alice)
    created = await client.post("/api/keys", json={"name": "laptop", "scopes": ["read", "write"]})
    assert created.status_code == 201, created.text
    body = created.json()
    match = re.fullmatch(r"mx_([a-z0-9]{8})_[A-Za-z0-9_-]+", body["key"])
    assert match and match.group(1) == body["prefix"]
    assert body["name"] == "laptop" and body["scopes"] == ["read", "write"] and body["kbs"] is None
    assert body["expires_at"] is None and body["created_at"]

    async with runtime.engine.connect() as conn:
        row = (await conn.execute(sa.text("SELECT * FROM api_keys"))).one()
    assert row.key_hash == hashlib.sha256(body["key"].encode()).hexdigest()
    assert body["key"] not in [str(v) for v in row]

    listed = (await client.get("/api/keys")).json()
    assert [k["id"] for k in listed] == [body["id"]]
    assert "key" not in listed[0] and body["key"] not in str(listed)


async def test_a_bearer_key_authenticates_and_records_its_use(make: Factory, alice: User, runtime: Runtime) -> None:
    key_id, key = await make.key(alice)
    me = await make.client(key=key).get("/api/auth/me")
    assert me.status_code == 200
    assert me.json()["user"]["email"] == alice.email and me.json()["auth"] == "key" and me.json()["csrf_token"] is None
    async with runtime.engine.connect() as conn:
        used = (
            await conn.execute(sa.text("SELECT last_used_at FROM api_keys WHERE id = :id"), {"id": key_id})
        ).scalar_one()
    assert used is not None


async def test_revoked_expired_and_invalid_keys_get_precise_401s(make: Factory, alice: User, runtime: Runtime) -> None:
    session_client = await make.as_user(alice)
    key_id, key = await make.key(alice)
    assert (await make.client(key=key).get("/api/kbs")).status_code == 200
    assert (await session_client.delete(f"/api/keys/{key_id}")).status_code == 204
    revoked = await make.client(key=key).get("/api/kbs")
    assert revoked.status_code == 401 and revoked.json() == {"detail": "API key revoked"}
    assert key_id not in [k["id"] for k in (await session_client.get("/api/keys")).json()]

    expiring_id, expiring = await make.key(alice, expires_at=datetime.now(UTC) + timedelta(days=1))
    assert (await make.client(key=expiring).get("/api/kbs")).status_code == 200
    async with runtime.engine.begin() as conn:
        await conn.execute(
            sa.text("UPDATE api_keys SET expires_at = now() - interval '1 minute' WHERE id = :id"), {"id": expiring_id}
        )
    expired = await make.client(key=expiring).get("/api/kbs")
    assert expired.status_code == 401 and expired.json() == {"detail": "API key expired"}

    for bad in (key[:-4] + "abcd", "mx_nothere_" + "x" * 43, "not-a-key"):
        refused = await make.client(key=bad).get("/api/kbs")
        assert refused.status_code == 401 and refused.json() == {"detail": "invalid API key"}
    basic = await make.client().get("/api/kbs", headers={"Authorization": "Basic YTpi"})
    assert basic.status_code == 401 and "Bearer" in basic.json()["detail"]


async def test_scopes_follow_the_method(make: Factory, alice: User) -> None:
    _, read = await make.key(alice, scopes=["read"])
    reader = make.client(key=read)
    assert (await reader.get("/api/kbs")).status_code == 200
    refused = await reader.post("/api/kbs", json={"name": "nope"})
    assert refused.status_code == 403 and refused.json() == {"detail": "this API key lacks the 'write' scope"}
    assert (await reader.post("/api/keys", json={"name": "wider", "scopes": ["write"]})).status_code == 403

    _, write = await make.key(alice, scopes=["write"])
    assert (await make.client(key=write).post("/api/kbs", json={"name": "yes"})).status_code == 201


async def test_admin_scope_needs_an_admin_and_admin_routes_need_it(make: Factory, admin: User, alice: User) -> None:
    user_client = await make.as_user(alice)
    refused = await user_client.post("/api/keys", json={"name": "x", "scopes": ["admin"]})
    assert refused.status_code == 403 and refused.json() == {
        "detail": "only administrators can create keys with the admin scope"
    }

    _, plain = await make.key(admin, scopes=["read", "write"])
    response = await make.client(key=plain).get("/api/admin/users")
    assert response.status_code == 403 and response.json() == {"detail": "this API key lacks the 'admin' scope"}
    _, full = await make.key(admin, scopes=["read", "admin"])
    assert (await make.client(key=full).get("/api/admin/users")).status_code == 200

    _, alice_key = await make.key(alice, scopes=["read", "write"])
    assert (await make.client(key=alice_key).get("/api/admin/users")).status_code == 403


async def test_a_key_limited_to_a_kb_sees_only_that_kb(make: Factory, alice: User) -> None:
    team = await make.kb(alice, name="team")
    other = await make.kb(alice, name="other")
    _, key = await make.key(alice, kbs=[team.id])
    limited = make.client(key=key)

    assert [kb["name"] for kb in (await limited.get("/api/kbs")).json()] == ["team"]
    assert (await limited.get(f"/api/kbs/{team.id}")).status_code == 200
    assert (await limited.get(f"/api/kbs/{other.id}")).status_code == 404
    assert (await limited.patch(f"/api/kbs/{other.id}", json={"description": "x"})).status_code == 404
    refused = await limited.post("/api/kbs", json={"name": "escape"})
    assert refused.status_code == 403

    # A limited key manages no keys at all (test_restricted_keys_cannot_manage_keys).
    child = await limited.post("/api/keys", json={"name": "child", "scopes": ["read"]})
    assert child.status_code == 403


async def test_keys_can_only_be_limited_to_readable_kbs(make: Factory, alice: User, bob: User) -> None:
    bobs = await make.kb(bob, name="bob's")
    client = await make.as_user(alice)
    response = await client.post("/api/keys", json={"name": "x", "scopes": ["read"], "kbs": [str(bobs.id)]})
    assert response.status_code == 404 and response.json() == {"detail": "knowledge base not found"}

    await make.share(bobs, alice, role=Role.viewer)
    shared = await client.post("/api/keys", json={"name": "x", "scopes": ["read"], "kbs": [str(bobs.id)]})
    assert shared.status_code == 201


async def test_keys_belong_to_their_user(make: Factory, alice: User, bob: User) -> None:
    bob_key_id, bob_key = await make.key(bob)
    alice_client = await make.as_user(alice)
    assert (await alice_client.get("/api/keys")).json() == []
    assert (await alice_client.delete(f"/api/keys/{bob_key_id}")).status_code == 404
    assert (await make.client(key=bob_key).get("/api/kbs")).status_code == 200


async def test_bad_key_requests_are_refused_clearly(make: Factory, alice: User) -> None:
    client = await make.as_user(alice)
    past = await client.post("/api/keys", json={"name": "x", "scopes": ["read"], "expires_at": "2001-01-01T00:00:00Z"})
    assert past.status_code == 400 and past.json() == {"detail": "expires_at must be in the future"}
    unknown = await client.post("/api/keys", json={"name": "x", "scopes": ["root"]})
    assert unknown.status_code == 422 and isinstance(unknown.json()["detail"], str)
    empty = await client.post("/api/keys", json={"name": "x", "scopes": []})
    assert empty.status_code == 422
    naive = await client.post("/api/keys", json={"name": "x", "scopes": ["read"], "expires_at": "2100-01-01T00:00:00"})
    assert naive.status_code == 201 and naive.json()["expires_at"].startswith("2100-01-01T00:00:00")
