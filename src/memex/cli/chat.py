"""`memex chat`: ask once (streamed, with sources), or talk in an interactive session."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from memex.chat import service
from memex.chat.models import ChatRequest
from memex.cli.kb_resolve import resolve_kb
from memex.cli.main import EXIT_FATAL, err_console, report_failure, settings_from
from memex.cli.remote import RemoteClient
from memex.errors import NotFound
from memex.kbs.access import Actor
from memex.runtime import Runtime, open_runtime
from memex.safe_text import for_terminal
from memex.settings import Settings

Events = AsyncIterator[tuple[str, dict[str, Any]]]
# (question, conversation id or None) -> the answer's events
Asker = Callable[[str, str | None], Events]


@dataclass
class _Printer:
    """Writes an answer's events to the terminal as they arrive."""

    console: Console
    conversation_id: str | None = None
    finished: bool = False
    answered: list[str] = field(default_factory=list)

    def event(self, name: str, data: dict[str, Any]) -> None:
        if name == "token":
            self.answered.append(data["text"])
            self.console.print(for_terminal(data["text"]), end="", markup=False, highlight=False, soft_wrap=True)
        elif name == "error":
            if self.answered:
                self.console.print()
            self.console.print(f"[red]{escape(for_terminal(data['detail']))}[/red]", highlight=False)
            self.answered.clear()
        elif name == "citations":
            self._citations(data)
        elif name == "done":
            self.finished = True
            self.conversation_id = data.get("conversation_id")
            timings = data.get("timings") or {}
            first = timings.get("ttft_ms")
            usage = data.get("usage") or {}
            parts = [data.get("model") or "", f"first words after {first:.0f} ms" if first else ""]
            if usage.get("completion_tokens"):
                parts.append(f"{usage['prompt_tokens']} + {usage['completion_tokens']} tokens")
            self.console.print(f"[dim]{escape(' · '.join(p for p in parts if p))}[/dim]")

    def _citations(self, data: dict[str, Any]) -> None:
        self.console.print("\n")
        sources = data.get("citations") or []
        if sources:
            self.console.print("[bold]Sources[/bold]")
        for c in sources:
            where = for_terminal(" › ".join(x for x in (c["heading"],) if x))
            place = for_terminal(f" ({c['location']})" if c["location"] else "")
            kb = f"  [dim]in {escape(for_terminal(c['kb_name']))}[/dim]" if c.get("kb_name") else ""
            self.console.print(
                f"  [{c['n']}] [cyan]{escape(for_terminal(c['path']))}[/cyan]"
                + (f"  {escape(where)}" if where else "")
                + escape(place)
                + kb,
                highlight=False,
            )
        for s in data.get("sentences") or []:
            if s["supported"] is False:
                self.console.print(
                    f"  [yellow]not supported by its sources:[/yellow] {escape(for_terminal(s['text']))}",
                    highlight=False,
                )
            elif s["supported"] is None and s.get("factual") and sources:
                self.console.print(f"  [dim]no source cited:[/dim] {escape(for_terminal(s['text']))}", highlight=False)


async def _local_events(
    runtime: Runtime, kb_ids: tuple[uuid.UUID, ...], question: str, conversation: str | None
) -> Events:
    request = ChatRequest(
        message=question, kb_ids=kb_ids, conversation_id=uuid.UUID(conversation) if conversation else None
    )
    turn = await service.prepare(runtime, Actor.system(), request)
    async for event in service.stream(runtime, turn):
        yield event.name, event.data()


async def _remote_events(client: RemoteClient, kb_ids: list[str], question: str, conversation: str | None) -> Events:
    body: dict[str, Any] = {"message": question, "stream": True}
    if kb_ids:
        body["kb"] = kb_ids
    if conversation:
        body["conversation_id"] = conversation
    async for name, data in client.chat_events(body):
        yield name, data


async def _open(stack: AsyncExitStack, settings: Settings, kb: list[str], url: str | None, key: str | None) -> Asker:
    """Connect (to the local database, or to the server at `url`) and resolve `--kb` names once."""
    if url:
        client = await stack.enter_async_context(RemoteClient(url, key))
        remote_ids = []
        for name in kb:
            found = await client.find_kb(name, create=False)
            if found is None:
                raise NotFound(f"no knowledge base named {name!r} on the server")
            remote_ids.append(str(found["id"]))
        return lambda question, conversation: _remote_events(client, remote_ids, question, conversation)
    runtime = await open_runtime(settings)
    stack.push_async_callback(runtime.close)
    local_ids = []
    for name in kb:
        found_kb = await resolve_kb(runtime, name, create=False)
        if found_kb is None:
            raise NotFound(f"no knowledge base named {name!r}: see `memex kb list`")
        local_ids.append(found_kb.id)
    return lambda question, conversation: _local_events(runtime, tuple(local_ids), question, conversation)


async def _answer(ask: Asker, printer: _Printer, question: str) -> None:
    async for name, data in ask(question, printer.conversation_id):
        printer.event(name, data)


async def _gather(ask: Asker, question: str) -> dict[str, Any]:
    """The events folded into the object `POST /api/chat` returns with `stream: false`."""
    out: dict[str, Any] = {"answer": "", "citations": [], "sentences": []}
    async for name, data in ask(question, None):
        if name == "token":
            out["answer"] += data["text"]
        elif name == "error":
            out["error"], out["answer"] = data["detail"], ""
        else:
            out |= data
    return out


def _run(runner: asyncio.Runner, coro: Awaitable[Any]) -> Any:
    try:
        return runner.run(coro)  # type: ignore[arg-type]
    except (KeyboardInterrupt, typer.Exit):
        raise
    except Exception as exc:
        report_failure(exc)


def _interactive(runner: asyncio.Runner, ask: Asker, console: Console) -> None:
    console.print("[dim]Ask about your documents. Ctrl-C stops an answer, Ctrl-D leaves.[/dim]")
    printer = _Printer(console)
    while True:
        try:
            question = console.input("[bold green]you ›[/bold green] ").strip()
        except EOFError:
            console.print()
            return
        except KeyboardInterrupt:
            console.print("\n[dim](Ctrl-D leaves)[/dim]")
            continue
        if not question:
            continue
        try:
            runner.run(_answer(ask, printer, question))
        except KeyboardInterrupt:
            console.print("\n[dim]stopped[/dim]")
        except Exception as exc:
            with contextlib.suppress(typer.Exit):  # said; the session goes on with the next question
                report_failure(exc)
        console.print()


def register(app: typer.Typer) -> None:
    @app.command()
    def chat(
        ctx: typer.Context,
        question: Annotated[
            str | None, typer.Argument(help="The question; without one, an interactive session starts.")
        ] = None,
        kb: Annotated[
            list[str] | None, typer.Option("--kb", help="Knowledge base name or id (repeatable); default all.")
        ] = None,
        json_out: Annotated[
            bool, typer.Option("--json", help="Print the same JSON object as POST /api/chat with stream: false.")
        ] = False,
        url: Annotated[
            str | None, typer.Option("--url", help="Ask this Memex server instead (default: MEMEX_URL).")
        ] = None,
        api_key: Annotated[
            str | None, typer.Option("--api-key", help="API key for --url (default: MEMEX_API_KEY).")
        ] = None,
    ) -> None:
        """Ask questions about your documents; answers cite their sources by number, like \\[1].

        With no language model configured (MEMEX_LLM_PROVIDER=none) the answer is the passages' best sentences.
        Sentences that their cited sources do not support are listed under the sources.
        """
        settings = settings_from(ctx)
        server = url or settings.url
        key = api_key or (settings.api_key.get_secret_value() if settings.api_key else None)
        if question is None and json_out:
            err_console.print(
                '[red]error:[/red] --json prints one answer, so give the question to ask: memex chat "QUESTION" --json'
            )
            raise typer.Exit(EXIT_FATAL)
        console = Console(highlight=False)
        with asyncio.Runner() as runner:
            stack = AsyncExitStack()
            try:
                ask: Asker = _run(runner, _open(stack, settings, kb or [], server, key))
                if question is None:
                    _interactive(runner, ask, console)
                elif json_out:
                    body = _run(runner, _gather(ask, question))
                    typer.echo(json.dumps(body, ensure_ascii=False))
                    if "message_id" not in body:  # not even an extractive answer
                        raise typer.Exit(EXIT_FATAL)
                else:
                    printer = _Printer(console)
                    try:
                        _run(runner, _answer(ask, printer, question))
                    except KeyboardInterrupt:
                        console.print("\n[dim]stopped[/dim]")
                        raise typer.Exit(130) from None
                    if not printer.finished:
                        raise typer.Exit(EXIT_FATAL)
            finally:
                runner.run(stack.aclose())
