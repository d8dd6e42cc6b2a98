"""Test data made through the real services and stores: users, KBs, sessions, API keys, documents."""

from __future__ import annotations

import functools
import hashlib
import itertools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
from fastapi import FastAPI

from memex.accounts import keys, passwords, service, store, tokens
from memex.accounts.models import User
from memex.api.auth import CSRF_HEADER, SESSION_COOKIE
from memex.ingest import pipeline
from memex.kbs import service as kbs
from memex.kbs.access import Actor, Role
from memex.kbs.models import KnowledgeBase
from memex.runtime import Runtime

PASSWORD = "correct horse battery staple"
BASE_URL = "http://memex.test"
_serial = itertools.count(1)


@functools.cache
def password_hash() -> str:
    """One argon2 hash of PASSWORD for every user a test makes: hashing is slow on purpose."""
    return passwords.hash_password(PASSWORD)


@dataclass
class Session:
    token: str
    csrf_token: str


@dataclass
class Factory:
    """Makes things in one test's database; clients it hands out are closed when the test ends."""

    runtime: Runtime
    app: FastAPI
    clients: list[httpx.AsyncClient] = field(default_factory=list)

    async def user(self, *, email: str | None = None, admin: bool = False) -> User:
        email = email or f"user{next(_serial)}-{uuid.uuid4().hex[:6]}@example.com"
        async with self.runtime.engine.begin() as conn:
            return await service.add_user(conn, email=email, password_hash=password_hash(), is_admin=admin)

    async def personal_kb(self, user: User) -> KnowledgeBase:
        async with self.runtime.engine.connect() as conn:
            return next(item.kb for item in await kbs.list_kbs(conn, service.actor_for(user)) if item.kb.is_personal)

    async def kb(self, owner: User, *, name: str | None = None) -> KnowledgeBase:
        async with self.runtime.engine.begin() as conn:
            return await kbs.create_kb(conn, service.actor_for(owner), name=name or f"kb {next(_serial)}")

    async def get_kb(self, kb_id: uuid.UUID | str) -> KnowledgeBase:
        async with self.runtime.engine.connect() as conn:
            found = await kbs.store.get_for(conn, Actor.system(), uuid.UUID(str(kb_id)))
        assert found is not None
        return found

    async def share(self, kb: KnowledgeBase, user: User, role: Role, *, accepted: bool = True) -> None:
        """Make the user a member (an accepted invitation, or a pending one with accepted=False)."""
        async with self.runtime.engine.begin() as conn:
            await kbs.store.add_member(conn, kb_id=kb.id, user_id=user.id, role=role, accepted=accepted)

    async def session(self, user: User, *, hours: float = 1) -> Session:
        """A login session written straight to the store (logging in through the API is tested on its own)."""
        token, csrf = tokens.session_token(), tokens.csrf_token()
        async with self.runtime.engine.begin() as conn:
            await store.insert_session(
                conn,
                token_hash=tokens.digest(token),
                user_id=user.id,
                csrf_token=csrf,
                expires_at=datetime.now(UTC) + timedelta(hours=hours),
            )
        return Session(token=token, csrf_token=csrf)

    async def key(
        self,
        user: User,
        *,
        scopes: Sequence[str] = ("read", "write"),
        kbs: Sequence[uuid.UUID] | None = None,
        expires_at: datetime | None = None,
    ) -> tuple[uuid.UUID, str]:
        """An API key for the user: (its id, the key)."""
        async with self.runtime.engine.begin() as conn:
            new = await keys.create_key(
                conn,
                service.actor_for(user),
                name=f"key {next(_serial)}",
                scopes=scopes,
                kb_ids=kbs,
                expires_at=expires_at,
            )
        return new.key.id, new.secret

    async def document(self, kb: KnowledgeBase, *, name: str, text: str) -> uuid.UUID:
        """An indexed document, through the ingestion pipeline (sandboxed parsing, real embedding), without the queue."""
        data = text.encode()
        item = pipeline.WorkItem(source_path=name, name=name, load=lambda: (data, hashlib.sha256(data).hexdigest()))
        outcomes = pipeline.Outcomes()
        await pipeline.run(self.runtime, kb_id=kb.id, items=[item], outcomes=outcomes)
        assert not outcomes.failures, outcomes.failures
        (written,) = outcomes.written
        return written.document_id

    def client(
        self, *, session: Session | None = None, key: str | None = None, base_url: str = BASE_URL
    ) -> httpx.AsyncClient:
        """An API client: anonymous, logged in with a session (cookie + CSRF header), or with a bearer key."""
        headers = {}
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        if session is not None:
            headers[CSRF_HEADER] = session.csrf_token
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url=base_url, headers=headers)
        if session is not None:
            client.cookies.set(SESSION_COOKIE, session.token)
        self.clients.append(client)
        return client

    async def as_user(self, user: User) -> httpx.AsyncClient:
        return self.client(session=await self.session(user))

    async def close(self) -> None:
        for client in self.clients:
            await client.aclose()
