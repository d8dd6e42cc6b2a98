"""`memex mcp`: Memex's tools for an MCP client (Claude Desktop, an editor...) over stdin/stdout."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from memex.cli.main import quiet_logging, run_async, settings_from
from memex.settings import Settings

if TYPE_CHECKING:
    from memex.mcp.backend import Backend


@asynccontextmanager
async def _local(settings: Settings) -> AsyncIterator[Backend]:
    from memex.kbs.access import Actor
    from memex.mcp.local import LocalBackend
    from memex.runtime import open_runtime

    runtime = await open_runtime(settings)
    try:
        yield LocalBackend(runtime, Actor.system())
    finally:
        await runtime.close()


@asynccontextmanager
async def _remote(url: str, api_key: str | None) -> AsyncIterator[Backend]:
    from memex.cli.remote import RemoteClient
    from memex.mcp.remote import RemoteBackend

    async with RemoteClient(url, api_key) as client:
        yield RemoteBackend(client)


def register(app: typer.Typer) -> None:
    @app.command()
    def mcp(
        ctx: typer.Context,
        url: Annotated[
            str | None, typer.Option("--url", help="Use this Memex server instead (default: MEMEX_URL).")
        ] = None,
        api_key: Annotated[
            str | None, typer.Option("--api-key", help="API key for --url (default: MEMEX_API_KEY).")
        ] = None,
    ) -> None:
        """Serve Memex to an MCP client over stdio: tools search, ask, get_document, list_knowledge_bases.

        Locally it reads the whole local database; with --url it acts as the API key's user on that server.
        stdout carries only MCP messages; logs go to stderr.
        """
        # Imported here: the MCP SDK takes a second to load, and no other command needs it.
        from memex.mcp.server import serve_stdio

        settings = settings_from(ctx)
        quiet_logging(settings)
        server = url or settings.url
        if server:
            key = api_key or (settings.api_key.get_secret_value() if settings.api_key else None)
            run_async(lambda: serve_stdio(_remote(server, key)))
        else:
            run_async(lambda: serve_stdio(_local(settings)))
