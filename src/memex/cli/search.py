"""`memex search`: on the server at --url/MEMEX_URL, else on a `memex serve` running here, else in this process.

A running server has the database open and the embedding model loaded, so asking it takes milliseconds where doing
the search here takes seconds; the modules the search in this process needs are imported only when it happens.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from memex.cli import local_server
from memex.cli.main import run_async, settings_from
from memex.errors import AuthenticationRequired, NotFound, PermissionDenied, ServiceUnavailable
from memex.safe_text import for_terminal
from memex.search.models import MAX_LIMIT

if TYPE_CHECKING:
    from memex.cli.remote import RemoteClient
    from memex.settings import Settings

_MARK = re.compile(r"<mark>(.*?)</mark>", re.S)


def _to_rich(snippet_html: str) -> str:
    import html

    parts = _MARK.split(snippet_html)
    # split() alternates plain text and marked text.
    return "".join(
        f"[bold yellow]{escape(for_terminal(html.unescape(p)))}[/bold yellow]"
        if i % 2
        else escape(for_terminal(html.unescape(p)))
        for i, p in enumerate(parts)
    )


def _print_results(console: Console, results: list[dict[str, Any]], *, hidden: int = 0) -> None:
    """Print results in the shape of `GET /api/search` (local results are turned into it first)."""
    if not results:
        if hidden:
            console.print("nothing relevant: no passage holds these words or comes close in meaning")
        else:
            console.print("no results: try other words, or `memex index PATH` to add documents")
        return
    for n, r in enumerate(results, 1):
        where = for_terminal(" · ".join(x for x in (r["heading"], r["location"]) if x))
        title, path = for_terminal(r["title"]), for_terminal(r["path"])
        # The fused score means nothing to a person (the order says it); --json keeps it.
        console.print(f"[bold]{n}. {escape(title)}[/bold]", highlight=False)
        kb = escape(for_terminal(r["kb_name"]))
        place = f"   [cyan]{escape(path)}[/cyan]  [dim]in {kb}" + (f" · {escape(where)}" if where else "") + "[/dim]"
        console.print(place, highlight=False)
        console.print("   " + _to_rich(" ".join(r["snippet"].split())), highlight=False)
        console.print()


async def _search_remote(
    client: RemoteClient, query: str, *, kbs: list[str], limit: int, mode: str, types: list[str], path: str | None
) -> dict[str, Any]:
    """`search --url`: the same request through `GET /api/search`; KB names are resolved on the server."""
    params: list[tuple[str, str | int]] = [("q", query), ("limit", limit), ("mode", mode)]
    for name in kbs:
        found = await client.find_kb(name, create=False)
        if found is None:
            raise NotFound(f"no knowledge base named {name!r} on the server")
        params.append(("kb", found["id"]))
    params.extend(("type", t) for t in types)
    if path:
        params.append(("path", path))
    return await client.search(params)


def register(app: typer.Typer) -> None:
    @app.command()
    def search(
        ctx: typer.Context,
        query: Annotated[str, typer.Argument(help='What to look for. Supports file:"*.md", +"must", -"must not".')],
        kb: Annotated[
            list[str] | None, typer.Option("--kb", help="Knowledge base name or id (repeatable); default all.")
        ] = None,
        limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=MAX_LIMIT, help="How many results.")] = 10,
        mode: Annotated[
            str, typer.Option("--mode", help="hybrid, keyword, or semantic (also called vector).")
        ] = "hybrid",
        file_type: Annotated[
            list[str] | None, typer.Option("--type", help="Only these file types (md, pdf...).")
        ] = None,
        path_prefix: Annotated[str | None, typer.Option("--path", help="Only documents under this path.")] = None,
        json_out: Annotated[
            bool, typer.Option("--json", help="Print the same JSON object as GET /api/search.")
        ] = False,
        url: Annotated[
            str | None, typer.Option("--url", help="Search on this Memex server instead (default: MEMEX_URL).")
        ] = None,
        api_key: Annotated[
            str | None, typer.Option("--api-key", help="API key for --url (default: MEMEX_API_KEY).")
        ] = None,
    ) -> None:
        """Search indexed documents (hybrid vector + full-text by default)."""
        settings = settings_from(ctx)
        key = api_key or (settings.api_key.get_secret_value() if settings.api_key else None)
        server = url or settings.url
        local = None if server else local_server.find(settings)

        async def go() -> dict[str, Any]:
            from memex.cli.remote import RemoteClient

            kbs, types = kb or [], file_type or []
            if server:
                async with RemoteClient(server, key) as client:
                    return await _search_remote(
                        client, query, kbs=kbs, limit=limit, mode=mode, types=types, path=path_prefix
                    )
            if local is not None and (key or not local.auth):
                try:
                    async with RemoteClient(local.url, key if local.auth else None) as client:
                        return await _search_remote(
                            client, query, kbs=kbs, limit=limit, mode=mode, types=types, path=path_prefix
                        )
                except (ServiceUnavailable, AuthenticationRequired, PermissionDenied):
                    pass  # gone, or the key is not for it: search here instead, which needs neither
            return await _search_here(settings, query, kbs=kbs, limit=limit, mode=mode, types=types, path=path_prefix)

        body = run_async(go)
        if json_out:
            typer.echo(json.dumps(body))
        else:
            _print_results(Console(), body["results"], hidden=int(body.get("hidden", 0)))


async def _search_here(
    settings: Settings, query: str, *, kbs: list[str], limit: int, mode: str, types: list[str], path: str | None
) -> dict[str, Any]:
    """The search in this process, as the local system (every KB), shaped like `GET /api/search`'s answer."""
    from memex.cli.kb_resolve import resolve_kb
    from memex.kbs.access import Actor
    from memex.runtime import open_runtime
    from memex.search import service
    from memex.search.models import SearchFilters, SearchRequest

    runtime = await open_runtime(settings)
    try:
        kb_ids = []
        for name in kbs:
            found = await resolve_kb(runtime, name, create=False)
            if found is None:
                raise NotFound(f"no knowledge base named {name!r}: see `memex kb list`")
            kb_ids.append(found.id)
        request = SearchRequest(
            query=query,
            limit=limit,
            mode=mode,  # type: ignore[arg-type]
            filters=SearchFilters(kb_ids=tuple(kb_ids), file_types=tuple(types), path_prefix=path),
        )
        return (await service.search_page(runtime, Actor.system(), request)).as_dict()
    finally:
        await runtime.close()
