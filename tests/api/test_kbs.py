"""Knowledge bases: create, read, rename, delete, share; roles decide who may do what."""

from __future__ import annotations

import sqlalchemy as sa

from memex.accounts.models import User
from memex.kbs.access import Role
from memex.runtime import Runtime
from tests.factories import Factory

UPLOAD = {"files": ("new.md", b"# New\n\nUploaded by a member.\n", "text/markdown")}


async def test_create_list_get_rename_and_delete(make: Factory, alice: User, runtime: Runtime) -> None:
    client = await make.as_user(alice)
    created = await client.post("/api/kbs", json={"name": "Research", "description": "papers"})
    assert created.status_code == 201
    kb = created.json()
    assert (kb["name"], kb["description"], kb["role"], kb["is_personal"], kb["document_count"]) == (
        "Research",
        "papers",
        "owner",
        False,
        0,
    )
    await make.document(await make.get_kb(kb["id"]), name="paper.md", text="# Paper\n\nSome findings.\n")

    listed = {k["name"]: k for k in (await client.get("/api/kbs")).json()}
    assert set(listed) == {"Personal", "Research"} and listed["Research"]["document_count"] == 1
    assert (await client.get(f"/api/kbs/{kb['id']}")).json()["document_count"] == 1

    renamed = await client.patch(f"/api/kbs/{kb['id']}", json={"name": "Reading"})
    assert (
        renamed.status_code == 200 and renamed.json()["name"] == "Reading" and renamed.json()["description"] == "papers"
    )

    assert (await client.delete(f"/api/kbs/{kb['id']}")).status_code == 204
    assert (await client.get(f"/api/kbs/{kb['id']}")).status_code == 404
    async with runtime.engine.connect() as conn:
        counts = (
            await conn.execute(sa.text("SELECT (SELECT count(*) FROM documents), (SELECT count(*) FROM blobs)"))
        ).one()
    assert tuple(counts) == (0, 0)


async def test_names_are_unique_per_owner(make: Factory, alice: User, bob: User) -> None:
    client = await make.as_user(alice)
    assert (await client.post("/api/kbs", json={"name": "Notes"})).status_code == 201
    duplicate = await client.post("/api/kbs", json={"name": "Notes"})
    assert duplicate.status_code == 409 and duplicate.json() == {
        "detail": "you already have a knowledge base named 'Notes'"
    }
    assert (await (await make.as_user(bob)).post("/api/kbs", json={"name": "Notes"})).status_code == 201

    other = (await client.post("/api/kbs", json={"name": "Other"})).json()
    clash = await client.patch(f"/api/kbs/{other['id']}", json={"name": "Notes"})
    assert clash.status_code == 409
    blank = await client.post("/api/kbs", json={"name": "   "})
    assert blank.status_code == 400


async def test_a_personal_kb_cannot_be_deleted(make: Factory, alice: User, admin: User) -> None:
    personal = await make.personal_kb(alice)
    response = await (await make.as_user(alice)).delete(f"/api/kbs/{personal.id}")
    assert response.status_code == 409 and response.json() == {"detail": "a personal knowledge base cannot be deleted"}
    # Another user's personal KB is out of an admin's reach altogether.
    response = await (await make.as_user(admin)).delete(f"/api/kbs/{personal.id}")
    assert response.status_code == 404 and response.json() == {"detail": "knowledge base not found"}


async def test_viewers_read_but_cannot_write(make: Factory, alice: User, bob: User) -> None:
    kb = await make.kb(alice, name="shared")
    doc = await make.document(kb, name="a.md", text="# A\n\nText.\n")
    await make.share(kb, bob, Role.viewer)
    viewer = await make.as_user(bob)

    got = await viewer.get(f"/api/kbs/{kb.id}")
    assert got.status_code == 200 and got.json()["role"] == "viewer"
    assert (await viewer.get(f"/api/kbs/{kb.id}/members")).status_code == 200
    assert (await viewer.post(f"/api/kbs/{kb.id}/documents", files=UPLOAD)).status_code == 403
    assert (await viewer.delete(f"/api/documents/{doc}")).status_code == 403
    assert (await viewer.patch(f"/api/kbs/{kb.id}", json={"name": "mine"})).status_code == 403
    assert (await viewer.delete(f"/api/kbs/{kb.id}")).status_code == 403
    refused = await viewer.post(f"/api/kbs/{kb.id}/members", json={"email": "root@example.com", "role": "viewer"})
    assert refused.status_code == 403
    assert refused.json() == {"detail": "only the owner of this knowledge base or an admin can do this"}


async def test_editors_change_content_but_cannot_share_rename_or_delete(make: Factory, alice: User, bob: User) -> None:
    kb = await make.kb(alice, name="shared")
    doc = await make.document(kb, name="a.md", text="# A\n\nText.\n")
    await make.share(kb, bob, Role.editor)
    editor = await make.as_user(bob)

    assert (await editor.post(f"/api/kbs/{kb.id}/documents", files=UPLOAD)).status_code == 202
    assert (await editor.delete(f"/api/documents/{doc}")).status_code == 204
    assert (
        await editor.post(f"/api/kbs/{kb.id}/members", json={"email": bob.email, "role": "editor"})
    ).status_code == 403
    assert (await editor.delete(f"/api/kbs/{kb.id}/members/{alice.id}")).status_code == 403
    assert (await editor.patch(f"/api/kbs/{kb.id}", json={"description": "x"})).status_code == 403
    assert (await editor.delete(f"/api/kbs/{kb.id}")).status_code == 403


async def test_owners_share_change_roles_and_unshare(make: Factory, alice: User, bob: User) -> None:
    kb = await make.kb(alice, name="shared")
    owner, member = await make.as_user(alice), await make.as_user(bob)
    assert (await member.get(f"/api/kbs/{kb.id}")).status_code == 404

    shared = await owner.post(f"/api/kbs/{kb.id}/members", json={"email": "BOB@example.com", "role": "viewer"})
    assert shared.status_code == 202
    assert (await member.post(f"/api/invitations/{kb.id}/accept")).status_code == 200
    assert (await member.get(f"/api/kbs/{kb.id}")).json()["role"] == "viewer"
    changed = await owner.post(f"/api/kbs/{kb.id}/members", json={"email": bob.email, "role": "editor"})
    assert changed.status_code == 202 and changed.json() == {
        "detail": f"{bob.email} is now editor of this knowledge base."
    }
    members = (await owner.get(f"/api/kbs/{kb.id}/members")).json()
    assert [(m["email"], m["role"]) for m in members] == [(alice.email, "owner"), (bob.email, "editor")]

    assert (await owner.delete(f"/api/kbs/{kb.id}/members/{bob.id}")).status_code == 204
    assert (await member.get(f"/api/kbs/{kb.id}")).status_code == 404

    to_owner = await owner.post(f"/api/kbs/{kb.id}/members", json={"email": alice.email, "role": "viewer"})
    assert to_owner.status_code == 409
    assert (await owner.delete(f"/api/kbs/{kb.id}/members/{alice.id}")).status_code == 409
    assert (await owner.delete(f"/api/kbs/{kb.id}/members/{bob.id}")).status_code == 404
    as_owner = await owner.post(f"/api/kbs/{kb.id}/members", json={"email": bob.email, "role": "owner"})
    assert as_owner.status_code == 422


async def test_members_may_leave(make: Factory, alice: User, bob: User) -> None:
    kb = await make.kb(alice, name="shared")
    await make.share(kb, bob, Role.viewer)
    member = await make.as_user(bob)
    assert (await member.delete(f"/api/kbs/{kb.id}/members/{bob.id}")).status_code == 204
    assert (await member.get(f"/api/kbs/{kb.id}")).status_code == 404


async def test_admins_act_as_owners(make: Factory, alice: User, admin: User) -> None:
    kb = await make.kb(alice, name="hers")
    root = await make.as_user(admin)
    assert (await root.get(f"/api/kbs/{kb.id}")).json()["role"] == "owner"
    assert (await root.patch(f"/api/kbs/{kb.id}", json={"description": "tidied"})).status_code == 200
    assert (
        await root.post(f"/api/kbs/{kb.id}/members", json={"email": admin.email, "role": "viewer"})
    ).status_code == 202
    assert (await root.delete(f"/api/kbs/{kb.id}")).status_code == 204
