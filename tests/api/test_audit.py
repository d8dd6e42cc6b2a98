"""The audit log through the real API: one exact row per audited action, failures too, nothing for a change that
rolled back; the database refuses to change or delete rows except through retention; admins list and filter it."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from memex.accounts.models import User
from memex.audit import service as audit
from memex.audit.models import AuditEntry
from memex.audit.store import COLUMNS
from memex.cli.main import app as cli
from memex.runtime import Runtime
from memex.settings import Settings
from tests.factories import PASSWORD, Factory

CLIENT_IP = "127.0.0.1"  # what httpx's ASGITransport reports as the client address


class AuditTrail:
    """Reads the rows appended since it was last asked."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.seen = 0

    async def new(self) -> list[AuditEntry]:
        async with self.runtime.engine.connect() as conn:
            rows = await conn.execute(
                sa.text(f"SELECT {COLUMNS} FROM audit_log a WHERE a.id > :seen ORDER BY a.id"), {"seen": self.seen}
            )
            found = [AuditEntry.from_row(r) for r in rows]
        if found:
            self.seen = found[-1].id
        return found

    async def skip(self) -> None:
        await self.new()


def brief(entry: AuditEntry) -> tuple[object, ...]:
    return (entry.action, entry.outcome, entry.actor_user_id, entry.actor_key_id, entry.target_type, entry.target_id)


@pytest.fixture
async def trail(runtime: Runtime) -> AuditTrail:
    return AuditTrail(runtime)


async def _login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    return await client.post("/api/auth/login", json={"email": email, "password": password})


async def test_logins_failures_lockout_and_logout(
    make: Factory, alice: User, trail: AuditTrail, runtime: Runtime
) -> None:
    await trail.skip()
    client = make.client()
    logged_in = await _login(client, "alice@example.com")
    assert logged_in.status_code == 200, logged_in.text
    [entry] = await trail.new()
    assert brief(entry) == ("login", "success", alice.id, None, "user", str(alice.id))
    assert entry.ip == CLIENT_IP and entry.actor_email == "alice@example.com"
    assert entry.request_id == logged_in.headers["X-Request-ID"]

    client.headers["X-CSRF-Token"] = logged_in.json()["csrf_token"]
    assert (await client.post("/api/auth/logout")).status_code == 204
    [entry] = await trail.new()
    assert brief(entry) == ("logout", "success", alice.id, None, "user", str(alice.id))

    stranger = make.client()
    assert (await _login(stranger, "nobody@example.com", "a guess")).status_code == 401
    [entry] = await trail.new()
    assert brief(entry) == ("login_failed", "failure", None, None, "user", None)
    assert entry.detail == {"reason": "unknown_email", "email": "nobody@example.com"} and entry.ip == CLIENT_IP
    assert (await _login(stranger, "not an email", "a guess")).status_code == 401
    [entry] = await trail.new()
    assert entry.detail == {"reason": "unknown_email"}  # what was typed is kept only if it is an email

    attempts = runtime.settings.login_max_attempts
    for n in range(attempts):
        response = await _login(stranger, "alice@example.com", f"wrong password {n}")
        assert response.status_code == 401
    entries = await trail.new()
    assert [brief(e) for e in entries] == [
        *[("login_failed", "failure", None, None, "user", str(alice.id))] * attempts,
        ("lockout", "failure", None, None, "user", str(alice.id)),
    ]
    assert entries[0].detail == {"reason": "wrong_password", "email": "alice@example.com"}
    assert set(entries[-1].detail) == {"email", "until"}

    assert (await _login(stranger, "alice@example.com")).status_code == 429  # the right password, while waiting
    [entry] = await trail.new()
    assert brief(entry)[:2] == ("login_failed", "failure") and entry.detail["reason"] == "locked"
    stored = json.dumps([e.detail for e in entries])
    assert "wrong password" not in stored and PASSWORD not in stored


async def test_keys_created_and_revoked_name_the_key_that_acted(make: Factory, alice: User, trail: AuditTrail) -> None:
    client = await make.as_user(alice)
    await trail.skip()
    created = await client.post("/api/keys", json={"name": "laptop", "scopes": ["read", "write"]})
    assert created.status_code == 201
    key_id, secret, prefix = created.json()["id"], created.json()["key"], created.json()["prefix"]
    [entry] = await trail.new()
    assert brief(entry) == ("key_created", "success", alice.id, None, "api_key", key_id)
    assert entry.detail == {"name": "laptop", "prefix": prefix, "scopes": ["read", "write"], "user_id": str(alice.id)}
    assert secret not in json.dumps(entry.detail)

    by_key = make.client(key=secret)
    second = await by_key.post("/api/keys", json={"name": "made by a key", "scopes": ["read"]})
    assert second.status_code == 201
    [entry] = await trail.new()
    assert brief(entry) == ("key_created", "success", alice.id, uuid.UUID(key_id), "api_key", second.json()["id"])

    assert (await client.delete(f"/api/keys/{key_id}")).status_code == 204
    [entry] = await trail.new()
    assert brief(entry) == ("key_revoked", "success", alice.id, None, "api_key", key_id)
    assert (await client.delete(f"/api/keys/{key_id}")).status_code == 404
    assert await trail.new() == []


async def test_users_created_disabled_enabled_promoted(make: Factory, admin: User, trail: AuditTrail) -> None:
    client = await make.as_user(admin)
    await trail.skip()
    created = await client.post("/api/admin/users", json={"email": "new@example.com", "password": "a long password 1"})
    assert created.status_code == 201
    user_id = created.json()["user"]["id"]
    [entry] = await trail.new()
    assert brief(entry) == ("user_created", "success", admin.id, None, "user", user_id)
    assert entry.detail == {"email": "new@example.com", "is_admin": False}
    assert "a long password 1" not in json.dumps(entry.detail)

    patched = await client.patch(f"/api/admin/users/{user_id}", json={"is_active": False, "is_admin": True})
    assert patched.status_code == 200
    assert [brief(e)[:1] + brief(e)[2:] for e in await trail.new()] == [
        ("user_disabled", admin.id, None, "user", user_id),
        ("user_promoted", admin.id, None, "user", user_id),
    ]
    same = await client.patch(f"/api/admin/users/{user_id}", json={"is_active": False})
    assert same.status_code == 200 and await trail.new() == []  # nothing changed, nothing recorded
    await client.patch(f"/api/admin/users/{user_id}", json={"is_active": True, "is_admin": False})
    assert [e.action for e in await trail.new()] == ["user_enabled", "user_demoted"]


async def test_kbs_created_shared_unshared_deleted_and_a_rolled_back_change_leaves_nothing(
    make: Factory, alice: User, bob: User, trail: AuditTrail
) -> None:
    client = await make.as_user(alice)
    await trail.skip()
    created = await client.post("/api/kbs", json={"name": "Research"})
    kb_id = created.json()["id"]
    [entry] = await trail.new()
    assert brief(entry) == ("kb_created", "success", alice.id, None, "kb", kb_id)
    assert entry.detail == {"name": "Research", "owner_id": str(alice.id)} and entry.ip == CLIENT_IP

    duplicate = await client.post("/api/kbs", json={"name": "Research"})
    assert duplicate.status_code == 409
    assert await trail.new() == []

    shared = await client.post(f"/api/kbs/{kb_id}/members", json={"email": "bob@example.com", "role": "viewer"})
    assert shared.status_code == 202
    [entry] = await trail.new()
    assert brief(entry) == ("kb_invited", "success", alice.id, None, "kb", kb_id)
    assert entry.detail == {"user_id": str(bob.id), "email": "bob@example.com", "role": "viewer"}
    assert (await client.delete(f"/api/kbs/{kb_id}/members/{bob.id}")).status_code == 204
    [entry] = await trail.new()
    assert brief(entry) == ("kb_unshared", "success", alice.id, None, "kb", kb_id)
    assert entry.detail == {"user_id": str(bob.id), "email": "bob@example.com", "role": "viewer"}

    assert (await client.delete(f"/api/kbs/{kb_id}")).status_code == 204
    [entry] = await trail.new()
    assert brief(entry) == ("kb_deleted", "success", alice.id, None, "kb", kb_id)
    assert (await client.delete(f"/api/kbs/{kb_id}")).status_code == 404
    assert await trail.new() == []


async def test_documents_uploaded_and_deleted(make: Factory, alice: User, trail: AuditTrail) -> None:
    kb = await make.kb(alice, name="Notes")
    key_id, key = await make.key(alice)
    client = make.client(key=key)
    await trail.skip()
    text = b"# Plan\n\nThe secret plan is to water the plants.\n"
    uploaded = await client.post(f"/api/kbs/{kb.id}/documents", files={"files": ("plan.md", text)})
    assert uploaded.status_code == 202
    doc_id = uploaded.json()["documents"][0]["id"]
    [entry] = await trail.new()
    assert brief(entry) == ("document_uploaded", "success", alice.id, key_id, "document", doc_id)
    assert entry.detail == {"kb_id": str(kb.id), "name": "plan.md", "size": len(text), "replaced": False}
    again = await client.post(f"/api/kbs/{kb.id}/documents", files={"files": ("plan.md", text)})
    assert again.status_code == 202 and await trail.new() == []  # the same content again changes nothing

    assert (await client.delete(f"/api/documents/{doc_id}")).status_code == 204
    [entry] = await trail.new()
    assert brief(entry) == ("document_deleted", "success", alice.id, key_id, "document", doc_id)
    assert entry.detail == {"kb_id": str(kb.id), "name": "plan.md"}


async def test_the_database_refuses_to_change_or_delete_entries(runtime: Runtime, alice: User) -> None:
    for statement in (
        "UPDATE audit_log SET outcome = 'failure'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ):
        with pytest.raises(DBAPIError, match="audit_log is append-only"):
            async with runtime.engine.begin() as conn:
                await conn.execute(sa.text(statement))
    # The retention setting lets through only rows older than the cutoff it names.
    with pytest.raises(DBAPIError, match="append-only: DELETE"):
        async with runtime.engine.begin() as conn:
            await conn.execute(sa.text("SELECT set_config('memex.audit_delete_before', '2000-01-01', true)"))
            await conn.execute(sa.text("DELETE FROM audit_log"))
    async with runtime.engine.connect() as conn:
        assert (await conn.execute(sa.text("SELECT count(*) FROM audit_log"))).scalar_one() >= 1


async def test_retention_deletes_only_entries_older_than_the_setting(runtime: Runtime, alice: User) -> None:
    async with runtime.engine.begin() as conn:
        for days in (400, 366, 364, 1):
            await conn.execute(
                sa.text(
                    "INSERT INTO audit_log (at, action, outcome) VALUES (now() - make_interval(days => :days), "
                    "'login', 'success')"
                ),
                {"days": days},
            )
    assert runtime.settings.audit_retention_days == 365
    days = runtime.settings.audit_retention_days
    async with runtime.engine.begin() as conn:
        assert await audit.apply_retention(conn, days=days) == 2
    async with runtime.engine.connect() as conn:
        ages = (
            await conn.execute(
                sa.text("SELECT action, extract(day FROM now() - at)::int AS days FROM audit_log ORDER BY id")
            )
        ).all()
    assert [a.days for a in ages if a.action == "login"] == [364, 1]
    pruned = [a for a in ages if a.action == "audit_pruned"]
    assert len(pruned) == 1
    async with runtime.engine.begin() as conn:
        assert await audit.apply_retention(conn, days=days) == 0
        # 0 keeps everything, however old.
        assert await audit.apply_retention(conn, days=0, now=datetime.now(UTC) + timedelta(days=3650)) == 0


async def test_admins_list_filter_and_page_the_log_others_are_refused(
    make: Factory, admin: User, alice: User, bob: User
) -> None:
    alice_client = await make.as_user(alice)
    for name in ("one", "two", "three"):
        assert (await alice_client.post("/api/kbs", json={"name": name})).status_code == 201
    bob_client = await make.as_user(bob)
    assert (await bob_client.post("/api/kbs", json={"name": "bob's"})).status_code == 201

    refused = await alice_client.get("/api/admin/audit")
    assert refused.status_code == 403 and refused.json() == {"detail": "administrators only"}
    assert (await make.client().get("/api/admin/audit")).status_code == 401
    _, admin_without_scope = await make.key(admin, scopes=["read"])
    assert (await make.client(key=admin_without_scope).get("/api/admin/audit")).status_code == 403

    client = await make.as_user(admin)
    page = (await client.get("/api/admin/audit", params={"action": "kb_created", "limit": 2})).json()
    assert page["total"] == 4 and page["limit"] == 2 and page["offset"] == 0
    assert [e["detail"]["name"] for e in page["entries"]] == ["bob's", "three"]  # newest first
    rest = (await client.get("/api/admin/audit", params={"action": "kb_created", "limit": 2, "offset": 2})).json()
    assert [e["detail"]["name"] for e in rest["entries"]] == ["two", "one"]

    mine = (await client.get("/api/admin/audit", params={"action": "kb_created", "user": str(alice.id)})).json()
    assert mine["total"] == 3 and {e["actor_email"] for e in mine["entries"]} == {"alice@example.com"}
    about_alice = (await client.get("/api/admin/audit", params={"user": str(alice.id)})).json()
    assert {e["action"] for e in about_alice["entries"]} == {"user_created", "kb_created"}

    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert (await client.get("/api/admin/audit", params={"since": future})).json()["total"] == 0
    assert (await client.get("/api/admin/audit", params={"until": future})).json()["total"] >= 8
    bad = await client.get("/api/admin/audit", params={"since": future, "until": future})
    assert bad.status_code == 400 and bad.json() == {"detail": "since must be earlier than until"}
    assert (await client.get("/api/admin/audit", params={"action": "drop_tables"})).status_code == 422
    assert (await client.get("/api/admin/audit", params={"limit": 0})).status_code == 422


async def test_memex_audit_json(settings: Settings, make: Factory, alice: User, tmp_path: Path) -> None:
    client = await make.as_user(alice)
    assert (await client.post("/api/kbs", json={"name": "From the API"})).status_code == 201
    assert settings.database_url is not None
    env = {
        "MEMEX_DATABASE_URL": settings.database_url.get_secret_value(),
        "MEMEX_DATA_DIR": str(settings.data_dir),
        "MEMEX_MODEL_CACHE_DIR": str(settings.model_cache_dir),
    }

    def memex(*args: str) -> str:
        result = CliRunner().invoke(cli, list(args), env=env)
        assert result.exit_code == 0, result.output
        return result.output

    body = json.loads(await asyncio.to_thread(memex, "audit", "--json", "--action", "kb_created"))
    assert body["total"] == 1 and body["limit"] == 50
    [entry] = body["entries"]
    assert entry["action"] == "kb_created" and entry["actor_email"] == "alice@example.com"
    assert entry["ip"] == CLIENT_IP and entry["detail"]["name"] == "From the API"
    everything = json.loads(await asyncio.to_thread(memex, "audit", "--json", "--user", "alice@example.com"))
    assert [e["action"] for e in everything["entries"]] == ["kb_created", "user_created"]
    table = await asyncio.to_thread(memex, "audit", "--limit", "5")
    assert "kb_created" in table and "alice@example.com" in table
