"""Dependencies declared once as `Annotated` aliases, so handlers read like prose."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request, Response
from sqlalchemy.ext.asyncio import AsyncConnection

from memex.api import auth
from memex.kbs import service as kbs
from memex.kbs.access import Actor, Role
from memex.kbs.models import KnowledgeBase
from memex.ratelimit import Bucket, caller
from memex.runtime import Runtime
from memex.settings import Settings


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


async def get_connection(runtime: RuntimeDep) -> AsyncIterator[AsyncConnection]:
    """A connection in a transaction that commits when the handler returns normally."""
    async with runtime.engine.begin() as conn:
        yield conn


# scope="function": commit before the response is sent, so a client's next request sees what this one wrote.
ConnDep = Annotated[AsyncConnection, Depends(get_connection, scope="function")]

# Who is calling (api/auth.py): every route except the public ones is authenticated by the app-level guard;
# these aliases hand the resolved actor to handlers that need it.
CurrentActor = Annotated[Actor, Depends(auth.current_actor)]
AdminActor = Annotated[Actor, Depends(auth.admin_actor)]
OptionalActor = Annotated[Actor | None, Depends(auth.optional_actor)]


async def kb_for_read(kb: uuid.UUID, actor: CurrentActor, conn: ConnDep) -> KnowledgeBase:
    return await kbs.require_kb(conn, actor, kb, Role.viewer)


async def kb_for_write(kb: uuid.UUID, actor: CurrentActor, conn: ConnDep) -> KnowledgeBase:
    return await kbs.require_kb(conn, actor, kb, Role.editor)


# The `{kb}` path parameter resolved to a KB the caller may read / change the content of (404, then 403).
KbForRead = Annotated[KnowledgeBase, Depends(kb_for_read)]
KbForWrite = Annotated[KnowledgeBase, Depends(kb_for_write)]


def rate_limit(bucket: Bucket) -> Callable[..., Awaitable[None]]:
    """A dependency that counts the caller's request against `bucket` (429 past the limit) and reports what is
    left in RateLimit-* headers."""

    async def counted(actor: CurrentActor, runtime: RuntimeDep, response: Response) -> None:
        allowance = await runtime.rate_limits.hit(bucket, caller(actor))
        if allowance is not None:
            response.headers.update(allowance.headers())

    return counted


async def login_rate_limit(request: Request, runtime: RuntimeDep, response: Response) -> None:
    """Login attempts counted per client address (there is no one to count them for yet)."""
    address = request.client.host if request.client else "unknown"
    allowance = await runtime.rate_limits.hit("login", f"ip:{address}")
    if allowance is not None:
        response.headers.update(allowance.headers())
