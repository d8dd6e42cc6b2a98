"""Sharing is an invitation: nothing reaches a user's list, search or chat until they accept it, and the inviter
cannot tell from the answer whether an address has an account."""

from __future__ import annotations

import sqlalchemy as sa

from memex.accounts.models import User
from memex.kbs.access import Role
from memex.runtime import Runtime
from tests.factories import Factory


async def members_rows(runtime: Runtime) -> list[tuple[str, str, bool]]:
    async with runtime.engine.connect() as conn:
        rows = await conn.execute(
            sa.text(
                "SELECT k.name, m.role, m.accepted_at IS NOT NULL AS accepted FROM kb_members m "
                "JOIN knowledge_bases k ON k.id = m.kb_id WHERE NOT k.is_personal ORDER BY k.name, m.role"
            )
        )
        return [(r.name, r.role, r.accepted) for r in rows]


async def test_a_shared_kb_reaches_nobody_until_they_accept(make: Factory, alice: User, bob: User) -> None:
    kb = await make.kb(alice, name="Planted")
    await make.document(kb, name="fake.md", text="# Urgent\n\nThe quibbleflux password reset is at evil.example.\n")
    owner, invitee = await make.as_user(alice), await make.as_user(bob)

    sent = await owner.post(f"/api/kbs/{kb.id}/members", json={"email": bob.email, "role": "viewer"})
    assert sent.status_code == 202
    # Pending: not in bob's list, search or chat, not readable, not among the members the owner sees.
    assert [k["name"] for k in (await invitee.get("/api/kbs")).json()] == ["Personal"]
    assert (await invitee.get(f"/api/kbs/{kb.id}")).status_code == 404
    found = await invitee.get("/api/search", params={"q": "quibbleflux", "mode": "keyword"})
    assert found.status_code == 200 and found.json() == {"results": [], "hidden": 0, "next_offset": None}
    asked = await invitee.post("/api/chat", json={"message": "quibbleflux password reset", "stream": False})
    assert asked.status_code == 200 and "evil.example" not in asked.text
    assert [m["email"] for m in (await owner.get(f"/api/kbs/{kb.id}/members")).json()] == [alice.email]

    [invitation] = (await invitee.get("/api/invitations")).json()
    assert {k: invitation[k] for k in ("kb", "name", "role", "owner_name", "is_personal")} == {
        "kb": str(kb.id),
        "name": "Planted",
        "role": "viewer",
        "owner_name": "alice",
        "is_personal": False,
    }
    accepted = await invitee.post(f"/api/invitations/{kb.id}/accept")
    assert accepted.status_code == 200 and accepted.json()["role"] == "viewer"
    assert (await invitee.get("/api/invitations")).json() == []
    assert {k["name"] for k in (await invitee.get("/api/kbs")).json()} == {"Personal", "Planted"}
    found = await invitee.get("/api/search", params={"q": "quibbleflux", "mode": "keyword"})
    assert [r["kb"] for r in found.json()["results"]] == [str(kb.id)]
    again = await invitee.post(f"/api/invitations/{kb.id}/accept")
    assert again.status_code == 404 and again.json() == {"detail": "invitation not found"}


async def test_a_declined_invitation_is_gone(make: Factory, runtime: Runtime, alice: User, bob: User) -> None:
    kb = await make.kb(alice, name="Spam")
    await make.share(kb, bob, Role.editor, accepted=False)
    invitee = await make.as_user(bob)
    assert (await invitee.delete(f"/api/invitations/{kb.id}")).status_code == 204
    assert await members_rows(runtime) == [("Spam", "owner", True)]
    assert (await invitee.get("/api/invitations")).json() == []
    gone = await invitee.delete(f"/api/invitations/{kb.id}")
    assert gone.status_code == 404 and gone.json() == {"detail": "invitation not found"}
    # A pending invitee is not a member: they can neither leave nor write.
    assert (await invitee.post(f"/api/kbs/{kb.id}/documents", files={"files": ("x.md", b"# X\n")})).status_code == 404


async def test_the_answer_is_the_same_for_known_and_unknown_addresses(
    make: Factory, runtime: Runtime, alice: User, bob: User
) -> None:
    kb = await make.kb(alice, name="Team")
    owner = await make.as_user(alice)
    answers = {}
    for email in ("bob@example.com", "nobody@example.com"):
        response = await owner.post(f"/api/kbs/{kb.id}/members", json={"email": email, "role": "editor"})
        answers[email] = (response.status_code, response.json()["detail"].replace(email, "EMAIL"))
    assert (
        answers["bob@example.com"]
        == answers["nobody@example.com"]
        == (
            202,
            "If EMAIL has an account, they have been invited as editor; the knowledge base is shared once they accept.",
        )
    )
    # The unknown address made nothing; bob's invitation waits, unseen by the owner.
    assert await members_rows(runtime) == [("Team", "editor", False), ("Team", "owner", True)]
    assert [m["email"] for m in (await owner.get(f"/api/kbs/{kb.id}/members")).json()] == [alice.email]


async def test_invitations_are_audited(make: Factory, runtime: Runtime, alice: User, bob: User) -> None:
    kb = await make.kb(alice, name="Audited")
    owner, invitee = await make.as_user(alice), await make.as_user(bob)
    await owner.post(f"/api/kbs/{kb.id}/members", json={"email": bob.email, "role": "viewer"})
    await invitee.post(f"/api/invitations/{kb.id}/accept")
    await owner.post(f"/api/kbs/{kb.id}/members", json={"email": bob.email, "role": "editor"})
    await owner.delete(f"/api/kbs/{kb.id}/members/{bob.id}")
    await owner.post(f"/api/kbs/{kb.id}/members", json={"email": bob.email, "role": "viewer"})
    await invitee.delete(f"/api/invitations/{kb.id}")
    async with runtime.engine.connect() as conn:
        rows = await conn.execute(
            sa.text(
                "SELECT action, actor_user_id, detail ->> 'role' AS role FROM audit_log "
                "WHERE target_id = :kb AND action LIKE 'kb_%' AND action <> 'kb_created' ORDER BY id"
            ),
            {"kb": str(kb.id)},
        )
        trail = [(r.action, r.actor_user_id, r.role) for r in rows]
    assert trail == [
        ("kb_invited", alice.id, "viewer"),
        ("kb_invitation_accepted", bob.id, "viewer"),
        ("kb_shared", alice.id, "editor"),
        ("kb_unshared", alice.id, "editor"),
        ("kb_invited", alice.id, "viewer"),
        ("kb_invitation_declined", bob.id, "viewer"),
    ]


async def test_restricted_keys_cannot_see_or_answer_invitations(make: Factory, alice: User, bob: User) -> None:
    kb = await make.kb(alice, name="Team")
    await make.share(kb, bob, Role.viewer, accepted=False)
    personal = await make.personal_kb(bob)
    detail = (
        "this API key is restricted (to some knowledge bases or scopes) and cannot see or answer invitations: "
        "use a session or a key with all of your account's scopes"
    )
    for scopes, kbs in ((("read", "write"), [personal.id]), (("read",), None), (("write",), None)):
        _, key = await make.key(bob, scopes=scopes, kbs=kbs)
        client = make.client(key=key)
        for response in (
            await client.get("/api/invitations"),
            await client.post(f"/api/invitations/{kb.id}/accept"),
            await client.delete(f"/api/invitations/{kb.id}"),
        ):
            assert response.status_code == 403, (scopes, kbs, response.text)
            lacks = {f"this API key lacks the '{scope}' scope" for scope in ("read", "write")}
            assert response.json()["detail"] in {detail, *lacks}, response.text
    _, full = await make.key(bob, scopes=["read", "write"])
    assert (await make.client(key=full).post(f"/api/invitations/{kb.id}/accept")).status_code == 200
