"""Accounts after sign-up: changing your password, an admin resetting one or unlocking an account, a KB owner
changing a member's role, and whom sharing suggests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import sqlalchemy as sa

from memex.accounts.models import User
from memex.kbs.access import Role
from memex.runtime import Runtime
from tests.api.conftest import ClientFrom
from tests.factories import PASSWORD, Factory

LOGIN = "/api/auth/login"
CHANGE = "/api/auth/password"
NEW_PASSWORD = "a brand new passphrase"
STRANGER = "198.51.100.7"


async def _login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    return await client.post(LOGIN, json={"email": email, "password": password})


async def _audit(runtime: Runtime, action: str) -> list[tuple[str | None, str | None, dict[str, object]]]:
    """(actor, target id, detail) of each entry of `action`, oldest first."""
    async with runtime.engine.connect() as conn:
        rows = await conn.execute(
            sa.text("SELECT actor_user_id, target_id, detail FROM audit_log WHERE action = :action ORDER BY id"),
            {"action": action},
        )
        return [(str(r.actor_user_id) if r.actor_user_id else None, r.target_id, r.detail) for r in rows]


async def test_changing_your_password_needs_the_current_one_and_logs_out_your_other_sessions(
    make: Factory, alice: User, runtime: Runtime
) -> None:
    here, elsewhere = await make.as_user(alice), await make.as_user(alice)
    _, key = await make.key(alice)

    wrong = await here.post(CHANGE, json={"current_password": "not it", "new_password": NEW_PASSWORD})
    assert (wrong.status_code, wrong.json()) == (
        400,
        {"detail": "your current password is not right: nothing was changed"},
    )
    same = await here.post(CHANGE, json={"current_password": PASSWORD, "new_password": PASSWORD})
    assert same.json() == {"detail": "the new password is the same as the current one: choose another"}
    short = await here.post(CHANGE, json={"current_password": PASSWORD, "new_password": "short"})
    assert short.status_code == 422  # the password policy: at least 8 characters
    assert (await elsewhere.get("/api/auth/me")).status_code == 200  # nothing happened yet

    changed = await here.post(CHANGE, json={"current_password": PASSWORD, "new_password": NEW_PASSWORD})
    assert (changed.status_code, changed.json()) == (
        200,
        {"detail": "Your password has been changed (1 other session logged out)."},
    )
    assert (await here.get("/api/auth/me")).status_code == 200
    ended = await elsewhere.get("/api/auth/me")
    assert (ended.status_code, ended.json()) == (401, {"detail": "session ended: log in again"})
    assert (await make.client(key=key).get("/api/kbs")).status_code == 200  # keys are separate credentials

    anon = make.client()
    assert (await _login(anon, alice.email)).status_code == 401
    assert (await _login(anon, alice.email, NEW_PASSWORD)).status_code == 200
    assert await _audit(runtime, "password_changed") == [(str(alice.id), str(alice.id), {"sessions_ended": 1})]


async def test_a_restricted_key_cannot_change_the_password(make: Factory, alice: User) -> None:
    _, key = await make.key(alice, scopes=["read", "write"], kbs=[(await make.personal_kb(alice)).id])
    refused = await make.client(key=key).post(CHANGE, json={"current_password": PASSWORD, "new_password": NEW_PASSWORD})
    assert refused.status_code == 403
    assert "cannot change the account's password" in refused.json()["detail"]


async def test_an_admin_resets_a_password_shown_once_and_the_users_sessions_end(
    make: Factory, admin: User, alice: User, bob: User, runtime: Runtime
) -> None:
    root, victim_session = await make.as_user(admin), await make.as_user(alice)
    reset = await root.post(f"/api/admin/users/{alice.id}/password")
    assert reset.status_code == 200, reset.text
    generated = reset.json()["password"]
    assert len(generated) >= 16 and reset.json()["user"]["email"] == alice.email
    assert (await victim_session.get("/api/auth/me")).status_code == 401
    anon = make.client()
    assert (await _login(anon, alice.email)).status_code == 401
    assert (await _login(anon, alice.email, generated)).status_code == 200

    chosen = await root.post(f"/api/admin/users/{alice.id}/password", json={"password": NEW_PASSWORD})
    assert chosen.status_code == 200 and chosen.json()["password"] is None
    assert (await _login(anon, alice.email, NEW_PASSWORD)).status_code == 200
    assert (await root.post(f"/api/admin/users/{alice.id}/password", json={"password": "short"})).status_code == 422

    missing = await root.post(f"/api/admin/users/{uuid.uuid4()}/password")
    assert (missing.status_code, missing.json()) == (404, {"detail": "user not found"})
    plain = await (await make.as_user(bob)).post(f"/api/admin/users/{alice.id}/password")
    assert (plain.status_code, plain.json()) == (403, {"detail": "administrators only"})
    assert (await _login(anon, alice.email, NEW_PASSWORD)).status_code == 200  # the refused reset changed nothing

    details = [detail for _, target, detail in await _audit(runtime, "password_reset") if target == str(alice.id)]
    assert details == [
        {"email": alice.email, "generated": True, "sessions_ended": 1},
        {"email": alice.email, "generated": False, "sessions_ended": 1},
    ]


async def test_a_locked_account_shows_until_when_and_an_admin_unlocks_it(
    make: Factory,
    admin: User,
    alice: User,
    bob: User,
    runtime: Runtime,
    client_from: ClientFrom,
) -> None:
    root = await make.as_user(admin)
    stranger = client_from(STRANGER)
    for n in range(runtime.settings.login_max_attempts):
        assert (await _login(stranger, alice.email, f"guess {n}")).status_code == 401
    assert (await _login(stranger, alice.email)).status_code == 429
    locked_at = datetime.now(UTC)

    listed = {u["email"]: u["locked_until"] for u in (await root.get("/api/admin/users")).json()}
    assert listed[admin.email] is None and listed[bob.email] is None
    until = datetime.fromisoformat(listed[alice.email])
    assert locked_at < until <= locked_at + timedelta(seconds=31)

    unlocked = await root.post(f"/api/admin/users/{alice.id}/unlock")
    assert unlocked.status_code == 200 and unlocked.json()["locked_until"] is None
    assert (await _login(stranger, alice.email)).status_code == 200  # no wait left for the address it held back
    listed = {u["email"]: u["locked_until"] for u in (await root.get("/api/admin/users")).json()}
    assert listed[alice.email] is None
    assert await _audit(runtime, "user_unlocked") == [
        (str(admin.id), str(alice.id), {"email": alice.email, "addresses": 1})
    ]

    missing = await root.post(f"/api/admin/users/{uuid.uuid4()}/unlock")
    assert (missing.status_code, missing.json()) == (404, {"detail": "user not found"})
    plain = await (await make.as_user(bob)).post(f"/api/admin/users/{alice.id}/unlock")
    assert (plain.status_code, plain.json()) == (403, {"detail": "administrators only"})


async def test_a_lockout_ends_when_its_address_logs_in(
    make: Factory, admin: User, alice: User, runtime: Runtime, client_from: ClientFrom
) -> None:
    stranger = client_from(STRANGER)
    for n in range(runtime.settings.login_max_attempts):
        await _login(stranger, alice.email, f"guess {n}")
    root = await make.as_user(admin)
    assert next(u for u in (await root.get("/api/admin/users")).json() if u["id"] == str(alice.id))["locked_until"]
    _, wait = runtime.rate_limits.login_backoff._keys(f"{alice.email}|{STRANGER}")
    await runtime.rate_limits.counter(lambda storage: storage.clear(wait))  # as if the wait had passed
    assert (await _login(stranger, alice.email)).status_code == 200
    assert (
        next(u for u in (await root.get("/api/admin/users")).json() if u["id"] == str(alice.id))["locked_until"] is None
    )


async def test_the_owner_changes_a_members_role(
    make: Factory, admin: User, alice: User, bob: User, runtime: Runtime
) -> None:
    kb = await make.kb(alice, name="Team")
    carol = await make.user()
    await make.share(kb, bob, Role.viewer)
    await make.share(kb, carol, Role.viewer, accepted=False)
    owner, member = await make.as_user(alice), await make.as_user(bob)
    path = f"/api/kbs/{kb.id}/members"

    promoted = await owner.patch(f"{path}/{bob.id}", json={"role": "editor"})
    assert promoted.status_code == 200 and promoted.json()["role"] == "editor"
    upload = await member.post(f"/api/kbs/{kb.id}/documents", files={"files": ("x.md", b"# X\n\nText.\n")})
    assert upload.status_code == 202  # an editor now
    refused = await member.patch(f"{path}/{bob.id}", json={"role": "viewer"})
    assert (refused.status_code, refused.json()) == (
        403,
        {"detail": "only the owner of this knowledge base or an admin can do this"},
    )
    owners = await owner.patch(f"{path}/{alice.id}", json={"role": "viewer"})
    assert (owners.status_code, owners.json()) == (409, {"detail": "the owner's role cannot be changed"})
    for someone in (carol.id, uuid.uuid4()):  # an invitation not yet accepted, and nobody
        absent = await owner.patch(f"{path}/{someone}", json={"role": "editor"})
        assert (absent.status_code, absent.json()) == (
            404,
            {"detail": "this user is not a member of this knowledge base"},
        )
    assert (await owner.patch(f"{path}/{bob.id}", json={"role": "owner"})).status_code == 422

    demoted = await (await make.as_user(admin)).patch(f"{path}/{bob.id}", json={"role": "viewer"})
    assert demoted.status_code == 200 and demoted.json()["role"] == "viewer"
    roles = {m["email"]: m["role"] for m in (await owner.get(path)).json()}
    assert roles == {alice.email: "owner", bob.email: "viewer"}
    assert [(actor, d["role"], d["previous_role"]) for actor, _, d in await _audit(runtime, "kb_role_changed")] == [
        (str(alice.id), "editor", "viewer"),
        (str(admin.id), "viewer", "editor"),
    ]


async def test_sharing_suggests_everyone_to_admins_and_only_known_people_to_others(
    make: Factory, admin: User, alice: User, bob: User
) -> None:
    carol, dave, gone = await make.user(), await make.user(), await make.user()
    kb = await make.kb(alice, name="Team")
    await make.share(kb, bob, Role.viewer)
    await make.share(kb, carol, Role.viewer, accepted=False)  # pending: it must not tell that carol has an account
    root = await make.as_user(admin)
    assert (await root.patch(f"/api/admin/users/{gone.id}", json={"is_active": False})).status_code == 200

    async def suggested(user: User) -> list[str]:
        answer = await (await make.as_user(user)).get("/api/share-suggestions")
        assert answer.status_code == 200, answer.text
        return list(answer.json()["emails"])

    assert await suggested(admin) == sorted(u.email for u in (alice, bob, carol, dave))
    assert await suggested(alice) == [bob.email]
    assert await suggested(bob) == [alice.email]
    assert await suggested(carol) == []
    assert await suggested(dave) == []
