"""The MCP server: Memex's four tools over any Backend, served on stdio or, per request, over HTTP (http.py).

A Memex error (not found, no permission, bad input) comes back as a tool error carrying its message, and anything
unexpected as a tool error that points at the log: the client never sees a crash.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

import structlog
from mcp import types
from mcp.server import Server, ServerRequestContext
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError
from pydantic import TypeAdapter, ValidationError

from memex.db import failures
from memex.errors import InvalidInput, MemexError, NotFound
from memex.mcp.backend import Backend
from memex.mcp.schemas import (
    AnswerOutput,
    Args,
    AskArgs,
    DocumentOutput,
    GetDocumentArgs,
    KnowledgeBasesOutput,
    NoArgs,
    SearchArgs,
    SearchOutput,
)

log = structlog.get_logger("memex.mcp")

NAME = "memex"
# The most text one get_document call returns: a long PDF would not fit a model's context in one piece.
MAX_TEXT_CHARS = 50_000
INSTRUCTIONS = (
    "Memex holds the user's documents in knowledge bases. Use `search` to find passages, `ask` for an answer "
    "with citations, `get_document` to read a whole document that a result or citation points at, and "
    "`list_knowledge_bases` to see which knowledge bases there are."
)


# Tools


async def _search(backend: Backend, args: SearchArgs) -> dict[str, Any]:
    kb_id = await _kb_id(backend, args.kb)
    return {"results": await backend.search(query=args.query, kb_id=kb_id, limit=args.limit, mode=args.mode)}


async def _ask(backend: Backend, args: AskArgs) -> dict[str, Any]:
    return await backend.ask(question=args.question, kb_id=await _kb_id(backend, args.kb))


async def _get_document(backend: Backend, args: GetDocumentArgs) -> dict[str, Any]:
    document, text = await backend.document(str(args.document_id))
    end = args.offset + MAX_TEXT_CHARS
    return {
        "document": document,
        "text": text[args.offset : end],
        "offset": args.offset,
        "next_offset": end if end < len(text) else None,
        "total_chars": len(text),
    }


async def _list_knowledge_bases(backend: Backend, args: NoArgs) -> dict[str, Any]:
    return {"knowledge_bases": await backend.knowledge_bases()}


async def _kb_id(backend: Backend, kb: str | None) -> str | None:
    """The id of the knowledge base `kb` names (an id or a name), among those the caller may read."""
    wanted = (kb or "").strip()
    if not wanted:
        return None
    readable = await backend.knowledge_bases()
    try:
        kb_id = str(uuid.UUID(wanted))
    except ValueError:
        pass
    else:
        if any(found["id"] == kb_id for found in readable):
            return kb_id
        # Same answer for "does not exist" and "not yours", so ids cannot be probed.
        raise NotFound("knowledge base not found")
    named = [found for found in readable if found["name"] == wanted]
    # Several of one name (names are unique per owner): the local, ownerless one, else the caller's own.
    for narrowed in (named, [k for k in named if k["owner_id"] is None], [k for k in named if k["role"] == "owner"]):
        if len(narrowed) == 1:
            return str(narrowed[0]["id"])
    if not named:
        raise NotFound(f"no knowledge base named {wanted!r}: see list_knowledge_bases")
    ids = ", ".join(found["id"] for found in named)
    raise InvalidInput(f"several knowledge bases are named {wanted!r}; pass one of these ids as kb: {ids}")


@dataclass(frozen=True, slots=True)
class _Tool:
    tool: types.Tool
    args: type[Args]
    run: Callable[[Backend, Any], Awaitable[dict[str, Any]]]


def _tool(
    name: str,
    *,
    title: str,
    description: str,
    args: type[Args],
    output: type[Any],
    run: Callable[[Backend, Any], Awaitable[dict[str, Any]]],
    read_only: bool = True,
) -> _Tool:
    tool = types.Tool(
        name=name,
        title=title,
        description=description,
        input_schema=args.model_json_schema(),
        output_schema=TypeAdapter(output).json_schema(),
        annotations=types.ToolAnnotations(read_only_hint=read_only, destructive_hint=False, open_world_hint=False),
    )
    return _Tool(tool=tool, args=args, run=run)


TOOLS: dict[str, _Tool] = {
    t.tool.name: t
    for t in (
        _tool(
            "search",
            title="Search documents",
            description="Search the user's documents, by meaning and by words (hybrid search), and return the best "
            "passages first: each with its document id, knowledge base, title, path, heading, location, text and "
            "score. Read a whole document with get_document.",
            args=SearchArgs,
            output=SearchOutput,
            run=_search,
        ),
        _tool(
            "ask",
            title="Ask a question",
            description="Answer a question from the user's documents: the answer cites the passages it uses as [n], "
            "`citations` says which document and place each [n] is, and `sentences` whether the cited passages "
            "support each sentence. Without a language model configured the answer is extractive (the best "
            "sentences of the best passages). Each question is saved in the user's chat history.",
            args=AskArgs,
            output=AnswerOutput,
            run=_ask,
            read_only=False,
        ),
        _tool(
            "get_document",
            title="Read a document",
            description="Read one document: its details (title, path, type, status...) and its text: the file "
            "itself for text formats, the text extracted from it for HTML, PDF and DOCX. Long texts come "
            f"{MAX_TEXT_CHARS:,} characters at a time: call again with offset set to next_offset to read on.",
            args=GetDocumentArgs,
            output=DocumentOutput,
            run=_get_document,
        ),
        _tool(
            "list_knowledge_bases",
            title="List knowledge bases",
            description="List the knowledge bases the user may read: id, name, description, the user's role "
            "(owner, editor or viewer) and how many documents each holds.",
            args=NoArgs,
            output=KnowledgeBasesOutput,
            run=_list_knowledge_bases,
        ),
    )
}


async def call_tool(backend: Backend, name: str, arguments: Mapping[str, Any]) -> types.CallToolResult:
    """Run one tool: its result as JSON text and structured content, or a tool error with the reason."""
    found = TOOLS.get(name)
    if found is None:
        raise MCPError(code=types.INVALID_PARAMS, message=f"unknown tool {name!r}: use one of {', '.join(TOOLS)}")
    try:
        result = await found.run(backend, found.args.model_validate(dict(arguments)))
    except ValidationError as exc:
        return _error(_invalid(exc))
    except MemexError as exc:
        return _error(exc.message)
    except Exception as exc:
        if (down := failures.unavailable(exc)) is not None:
            log.error("MCP tool failed: database error", tool=name, error=failures.first_line(exc))
            return _error(down.message)
        log.exception("MCP tool failed", tool=name)
        return _error("internal error: see the server log")
    text = json.dumps(result, ensure_ascii=False)
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], structured_content=result)


def _error(message: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=message)], is_error=True)


def _invalid(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"])
        parts.append(f"{where}: {error['msg']}" if where else error["msg"])
    return "; ".join(parts)


@functools.cache
def _version() -> str:
    return version("memex")


def build_server(backend: Backend) -> Server[Any]:
    """An MCP server whose tools run on `backend`."""

    async def on_list_tools(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[t.tool for t in TOOLS.values()])

    async def on_call_tool(
        ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        return await call_tool(backend, params.name, params.arguments or {})

    return Server(
        NAME,
        version=_version(),
        title="Memex",
        instructions=INSTRUCTIONS,
        on_list_tools=on_list_tools,
        on_call_tool=on_call_tool,
    )


async def serve_stdio(backend: AbstractAsyncContextManager[Backend]) -> None:
    """Serve the tools on stdin/stdout until the client hangs up.

    The backend opens once the SDK holds stdout, so nothing it prints while starting can reach the protocol.
    """
    try:
        async with stdio_server() as (read, write), backend as opened:
            server = build_server(opened)
            await server.run(read, write, server.create_initialization_options())
    except BaseExceptionGroup as group:
        # The SDK's task group wraps what failed inside it (the database is unreachable...): the CLI reports a
        # Memex error as a message, so hand it over unwrapped.
        sole: BaseException = group
        while isinstance(sole, BaseExceptionGroup) and len(sole.exceptions) == 1:
            sole = sole.exceptions[0]
        if isinstance(sole, MemexError | KeyboardInterrupt):
            raise sole from None
        raise
