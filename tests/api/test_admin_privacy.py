"""Admins manage users and knowledge bases, but another user's personal KB never enters their own list, search or
chat unless it was shared with them and they accepted; the admin view lists every KB with its real owner."""

from __future__ import annotations

from memex.accounts.models import User
from memex.kbs import store as kbs
from memex.kbs.access import Role
from memex.runtime import Runtime
from tests.factories import Factory

DIARY = "# Diary\n\nMy frobnicast appointment is on Tuesday.\n"


async def test_another_users_personal_kb_stays_out_of_an_admins_reach(
    make: Factory, runtime: Runtime, admin: User, alice: User
) -> None:
    personal = await make.personal_kb(alice)
    await make.document(personal, name="diary.md", text=DIARY)
    team = await make.kb(alice, name="Team handbook")
    async with runtime.engine.begin() as conn:
        local = await kbs.create(conn, name="Local notes", owner_id=None)
    # The admin's own reach holds the word too, so that their searches find something and the check below can fail.
    await make.document(local, name="memo.md", text="# Memo\n\nThe frobnicast was moved to another room.\n")
    root = await make.as_user(admin)

    listed = {(k["name"], k["owner_name"], k["role"]) for k in (await root.get("/api/kbs")).json()}
    assert listed == {
        ("Personal", "root", "owner"),
        ("Team handbook", "alice", "owner"),
        ("Local notes", None, "owner"),
    }
    for mode in ("keyword", "vector", "hybrid"):
        found = await root.get("/api/search", params={"q": "frobnicast appointment", "mode": mode})
        assert {r["kb"] for r in found.json()["results"]} == {str(local.id)}, mode
    aimed = await root.get("/api/search", params={"q": "frobnicast", "kb": str(personal.id)})
    assert aimed.status_code == 404
    asked = await root.post("/api/chat", json={"message": "When is the frobnicast appointment?", "stream": False})
    assert asked.status_code == 200 and "Tuesday" not in asked.json()["answer"]
    assert (await root.get(f"/api/kbs/{personal.id}")).status_code == 404

    # The admin view names every KB's real owner, and holds no contents.
    everything = {k["name"] + "/" + str(k["owner_email"]): k for k in (await root.get("/api/admin/kbs")).json()}
    assert set(everything) == {
        f"Personal/{admin.email}",
        f"Personal/{alice.email}",
        f"Team handbook/{alice.email}",
        "Local notes/None",
    }
    mine = everything[f"Personal/{alice.email}"]
    assert (mine["id"], mine["is_personal"], mine["document_count"], mine["member_count"]) == (
        str(personal.id),
        True,
        1,
        1,
    )
    assert str(local.id) in {k["id"] for k in everything.values()}
    # Management still works: an admin acts as owner of the team KB, and disables alice.
    assert (await root.patch(f"/api/kbs/{team.id}", json={"description": "tidied"})).status_code == 200
    disabled = await root.patch(f"/api/admin/users/{alice.id}", json={"is_active": False})
    assert disabled.status_code == 200 and disabled.json()["is_active"] is False


async def test_a_personal_kb_shared_with_an_admin_counts_once_accepted(make: Factory, admin: User, alice: User) -> None:
    personal = await make.personal_kb(alice)
    await make.document(personal, name="diary.md", text=DIARY)
    await make.share(personal, admin, Role.viewer, accepted=False)
    root = await make.as_user(admin)
    assert (await root.get(f"/api/kbs/{personal.id}")).status_code == 404
    assert (await root.post(f"/api/invitations/{personal.id}/accept")).status_code == 200
    got = await root.get(f"/api/kbs/{personal.id}")
    # A viewer, as invited: being an admin adds nothing to another user's personal KB.
    assert got.status_code == 200 and (got.json()["role"], got.json()["owner_name"]) == ("viewer", "alice")
    refused = await root.post(f"/api/kbs/{personal.id}/documents", files={"files": ("x.md", b"# X\n")})
    assert refused.status_code == 403
    found = await root.get("/api/search", params={"q": "frobnicast", "mode": "keyword"})
    assert [r["kb"] for r in found.json()["results"]] == [str(personal.id)]


async def test_only_admins_see_the_admin_view(make: Factory, alice: User, admin: User) -> None:
    refused = await (await make.as_user(alice)).get("/api/admin/kbs")
    assert refused.status_code == 403 and refused.json() == {"detail": "administrators only"}
    _, plain = await make.key(admin, scopes=["read", "write"])
    refused = await make.client(key=plain).get("/api/admin/kbs")
    assert refused.status_code == 403 and refused.json() == {"detail": "this API key lacks the 'admin' scope"}
