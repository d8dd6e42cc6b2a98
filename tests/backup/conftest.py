"""Backup fixtures: a database holding a bit of everything, and an empty one to restore into."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import psycopg
import pytest
from fastapi import FastAPI
from psycopg import sql

from memex.api.app import create_app
from memex.chat import store as chat
from memex.runtime import Runtime
from memex.settings import Settings
from tests.conftest import _with_database, drop_database
from tests.factories import Factory

TEXTS = {
    "herons.md": "# Herons\n\nThe grey heron waits motionless by the river, then strikes at fish.\n",
    "quokkas.md": "# Quokkas\n\nThe quokka is a small marsupial from Rottnest Island that seems to smile.\n",
    "tides.md": "# Tides\n\nSpring tides happen near full and new moons, when the sun and moon align.\n",
    "glaciers.md": "# Glaciers\n\n## Moraines\n\nA terminal moraine marks the furthest advance of a glacier.\n",
}
QUERIES = ("heron river fish", "marsupial island", "moon tides", "glacier moraine", "smile")


@dataclass
class Populated:
    key: str
    key_id: uuid.UUID
    documents: dict[str, uuid.UUID] = field(default_factory=dict)
    conversation_id: uuid.UUID | None = None


@pytest.fixture
def app(settings: Settings, runtime: Runtime) -> FastAPI:
    return create_app(settings, runtime=runtime)


@pytest.fixture
async def make(runtime: Runtime, app: FastAPI) -> AsyncIterator[Factory]:
    factory = Factory(runtime=runtime, app=app)
    yield factory
    await factory.close()


async def populate(make: Factory) -> Populated:
    """Users, a shared KB with indexed documents (original files kept), an API key and a conversation."""
    owner = await make.user(email="owner@example.com", admin=True)
    reader = await make.user(email="reader@example.com")
    kb = await make.kb(owner, name="field notes")
    from memex.kbs.access import Role

    await make.share(kb, reader, Role.viewer)
    key_id, key = await make.key(owner, scopes=("read", "write"))
    found = Populated(key=key, key_id=key_id)
    for name, text in TEXTS.items():
        found.documents[name] = await make.document(kb, name=name, text=text)
    async with make.runtime.engine.begin() as conn:
        found.conversation_id = await chat.create_conversation(
            conn, user_id=owner.id, title="About herons", kb_ids=[kb.id]
        )
        await chat.add_message(
            conn, conversation_id=found.conversation_id, role="user", content="Where do herons wait?"
        )
        await chat.add_message(
            conn, conversation_id=found.conversation_id, role="assistant", content="By the river [1]."
        )
    return found


@pytest.fixture
def empty_database(pg_server_url: str) -> Iterator[str]:
    """A new database with nothing in it (not even the schema): where a restore lands after a disaster."""
    name = f"memex_restore_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = _with_database(pg_server_url, name)
    yield url
    drop_database(pg_server_url, url)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
