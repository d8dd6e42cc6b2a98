"""Fair ingestion: a user who queues one file after another user queued many is served next, not last."""

from __future__ import annotations

import uuid
from typing import cast

import sqlalchemy as sa
from fastapi import FastAPI

from memex.accounts import service as accounts
from memex.documents import service
from memex.documents.models import Document
from memex.documents.service import Upload
from memex.kbs.access import Actor
from memex.runtime import Runtime
from tests.factories import Factory
from tests.integration.test_jobs import doc, drain


async def upload(runtime: Runtime, actor: Actor, kb_id: uuid.UUID, *names: str) -> list[Document]:
    async def receive() -> list[Upload]:
        return [Upload(name=name, data=f"# {name}\n\nNotes about {name}, kept for later.\n".encode()) for name in names]

    return (await service.upload(runtime, actor, kb_id=kb_id, receive=receive)).documents


async def priorities(runtime: Runtime) -> dict[str, list[int]]:
    async with runtime.engine.connect() as conn:
        rows = await conn.execute(
            sa.text(
                "SELECT args ->> 'owner' AS owner, priority FROM procrastinate_jobs "
                "WHERE task_name = 'memex:ingest_document' ORDER BY id"
            )
        )
        found: dict[str, list[int]] = {}
        for row in rows:
            found.setdefault(row.owner, []).append(row.priority)
        return found


async def test_one_users_many_uploads_do_not_hold_up_another_users_one(runtime: Runtime) -> None:
    make = Factory(runtime=runtime, app=cast(FastAPI, None))
    alice, bob = await make.user(), await make.user()
    alice_actor, bob_actor = accounts.actor_for(alice), accounts.actor_for(bob)
    alice_kb, bob_kb = await make.personal_kb(alice), await make.personal_kb(bob)

    many = await upload(runtime, alice_actor, alice_kb.id, *(f"a{i}.md" for i in range(6)))
    (one,) = await upload(runtime, bob_actor, bob_kb.id, "b.md")
    more = await upload(runtime, alice_actor, alice_kb.id, "a6.md", "a7.md")
    # Each user's jobs queue behind their own: Bob's first job ranks with Alice's first.
    assert await priorities(runtime) == {
        f"user:{alice.id}": [0, -1, -2, -3, -4, -5, -6, -7],
        f"user:{bob.id}": [0],
    }

    await drain(runtime)  # one job at a time, highest priority first

    done = {d.id: await doc(runtime, d.id) for d in [*many, one, *more]}
    assert all(d.status == "indexed" for d in done.values())
    order = sorted(done.values(), key=lambda d: (d.indexed_at, d.source_path))
    # Only Alice's first document, queued before Bob's at the same rank, was indexed before his.
    assert [d.source_path for d in order][:2] == ["a0.md", "b.md"]
