"""`/mcp`: the tools over MCP's streamable HTTP transport, inside the API app, as the API key's actor.

Each request is served on its own (stateless, JSON responses): no MCP session lives in this process, so any API
instance can answer any request, as with the rest of the API, and nothing needs the app's lifespan to run.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from memex.api import auth
from memex.mcp.local import LocalBackend
from memex.mcp.server import build_server
from memex.runtime import Runtime

PATH = "/mcp"


class McpEndpoint:
    """The ASGI app at /mcp: authenticate, then let the SDK answer with the tools bound to the caller."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        # A 401 or 403 raised here reaches the app's error handler, so it is `{"detail": ...}` like any API error.
        actor = await auth.api_key_actor(request)
        runtime: Runtime = request.app.state.runtime
        server = build_server(LocalBackend(runtime, actor, rate_limited=True))
        manager = StreamableHTTPSessionManager(server, stateless=True, json_response=True)
        async with manager.run():
            await manager.handle_request(scope, receive, send)


def install(app: FastAPI) -> None:
    """Serve MCP at /mcp: a plain route (an ASGI app), so it is not in the OpenAPI schema."""
    app.router.routes.append(Route(PATH, endpoint=McpEndpoint(), include_in_schema=False))
    # The manager announces its start and stop, which here means every request: the access log says enough.
    logging.getLogger("mcp.server.streamable_http_manager").setLevel(logging.WARNING)
