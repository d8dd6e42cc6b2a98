"""The machinery every LLM double shares: a real uvicorn server in a thread, scripting, records, waiting.

A double is a raw ASGI app, so it controls every byte it sends and sees the client leave (uvicorn delivers
`http.disconnect` as soon as the socket closes). Tests talk to it from their own thread and event loop; all
shared state is behind one lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, ClassVar, Self

import uvicorn

from tests.doubles.answer import default_answer
from tests.doubles.script import Behaviour, Endpoint, Outcome, Recorded

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class Exchange:
    """One request being answered; knows when the client went away."""

    def __init__(self, receive: Receive, send: Send, record: Recorded) -> None:
        self._receive = receive
        self._send = send
        self.record = record
        self.gone = asyncio.Event()
        self.complete = False

    async def watch(self) -> None:
        """Wait for `http.disconnect`; uvicorn also sends it after a complete response, which is no departure."""
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                if not self.complete:
                    self.gone.set()
                return

    async def start(self, status: int, headers: Iterable[tuple[str, str]]) -> None:
        self.record.status = status
        raw = [(name.lower().encode(), value.encode()) for name, value in headers]
        await self._send({"type": "http.response.start", "status": status, "headers": raw})

    async def write(self, data: bytes) -> bool:
        """Send part of the body; False when the client is gone."""
        if self.gone.is_set():
            return False
        await self._send({"type": "http.response.body", "body": data, "more_body": True})
        return True

    async def finish(self, data: bytes = b"") -> None:
        self.complete = True
        await self._send({"type": "http.response.body", "body": data, "more_body": False})

    async def json(self, status: int, body: object, headers: Mapping[str, str] | None = None) -> None:
        await self.start(status, [("content-type", "application/json"), *(headers or {}).items()])
        await self.finish(json.dumps(body).encode())

    async def pause(self, seconds: float) -> bool:
        """Sleep, cut short if the client leaves; False when it left."""
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.gone.wait(), seconds)
        return not self.gone.is_set()

    async def hang(self) -> None:
        await self.gone.wait()


Handler = Callable[[Exchange, Behaviour], Awaitable[None]]


class LlmDouble:
    """A fake model server. Subclasses speak one provider's protocol through `routes`."""

    provider: ClassVar[str] = ""
    default_models: ClassVar[tuple[str, ...]] = ()

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: dict[Endpoint, deque[Behaviour]] = {"generate": deque(), "models": deque(), "embed": deque()}
        self._defaults: dict[Endpoint, Behaviour] = {e: Behaviour() for e in self._queues}
        self._records: list[Recorded] = []
        self.models = list(self.default_models)
        """Model ids that `GET /v1/models` lists."""
        self.api_key: str | None = None
        """When set, requests that present another key get the provider's 401."""
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    # -- protocol, provided by subclasses

    @property
    def base_url(self) -> str:
        raise NotImplementedError

    def routes(self) -> dict[tuple[str, str], tuple[Endpoint, Handler]]:
        raise NotImplementedError

    def presented_key(self, headers: Mapping[str, str]) -> str | None:
        raise NotImplementedError

    def error_body(self, status: int, message: str | None) -> dict[str, Any]:
        raise NotImplementedError

    # -- life cycle

    @property
    def origin(self) -> str:
        assert self._socket is not None, "the double is not started"
        return f"http://127.0.0.1:{self._socket.getsockname()[1]}"

    def start(self) -> Self:
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        config = uvicorn.Config(
            self, lifespan="off", ws="none", http="h11", loop="asyncio", log_level="warning", access_log=False
        )
        config.timeout_graceful_shutdown = 1
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name=f"{self.provider}-double", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            assert time.monotonic() < deadline, f"the {self.provider} double did not start"
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(10)
        if self._socket is not None:
            self._socket.close()

    # -- scripting, from the test's thread

    def push(self, *behaviours: Behaviour, times: int = 1, endpoint: Endpoint = "generate") -> None:
        """Queue behaviours for the next requests to `endpoint`, in order (`times` repeats the sequence)."""
        with self._lock:
            self._queues[endpoint].extend(list(behaviours) * times)

    def set_default(self, behaviour: Behaviour, *, endpoint: Endpoint = "generate") -> None:
        """What requests get once the queue is empty."""
        with self._lock:
            self._defaults[endpoint] = behaviour

    def reset(self) -> None:
        """Forget scripts, records and the expected key (each test starts here)."""
        with self._lock:
            for queue in self._queues.values():
                queue.clear()
            self._defaults = {e: Behaviour() for e in self._queues}
            self._records.clear()
            self.api_key = None
            self.models = list(self.default_models)

    def _next(self, endpoint: Endpoint) -> Behaviour:
        with self._lock:
            queue = self._queues[endpoint]
            return queue.popleft() if queue else self._defaults[endpoint]

    # -- observing, from the test's thread

    @property
    def requests(self) -> list[Recorded]:
        """Snapshots of every request received since the last reset, oldest first."""
        with self._lock:
            return [dataclasses.replace(record, headers=dict(record.headers)) for record in self._records]

    @property
    def generations(self) -> list[Recorded]:
        """Only the chat requests (not model listings or embeddings)."""
        return [r for r in self.requests if r.method == "POST" and not r.path.endswith("/embeddings")]

    @property
    def embeddings(self) -> list[Recorded]:
        """Only the embeddings requests."""
        return [r for r in self.requests if r.path.endswith("/embeddings")]

    def count(self, outcome: Outcome) -> int:
        with self._lock:
            return sum(record.outcome == outcome for record in self._records)

    @property
    def active(self) -> int:
        """Requests still being answered."""
        return self.count("active")

    @property
    def finished(self) -> int:
        """Requests answered to the end (errors included)."""
        return self.count("finished")

    @property
    def disconnected(self) -> int:
        """Requests whose client went away before the answer ended."""
        return self.count("disconnected")

    @property
    def aborted(self) -> int:
        """Requests the double cut off on purpose (`stop_after`)."""
        return self.count("aborted")

    async def wait_for(self, condition: Callable[[LlmDouble], bool], *, timeout: float = 2.0, what: str = "") -> None:
        """Wait until `condition(double)` holds; AssertionError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not condition(self):
            if time.monotonic() > deadline:
                raise AssertionError(f"the {self.provider} double: timed out after {timeout:g} s waiting for {what}")
            await asyncio.sleep(0.01)

    def wait_for_sync(self, condition: Callable[[LlmDouble], bool], *, timeout: float = 2.0, what: str = "") -> None:
        """`wait_for` for synchronous tests (e2e)."""
        deadline = time.monotonic() + timeout
        while not condition(self):
            if time.monotonic() > deadline:
                raise AssertionError(f"the {self.provider} double: timed out after {timeout:g} s waiting for {what}")
            time.sleep(0.01)

    # -- serving, in the server's thread

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        record = self._record(scope, body)
        exchange = Exchange(receive, send, record)
        watcher = asyncio.create_task(exchange.watch())
        outcome: Outcome = "disconnected"
        try:
            await self._dispatch(scope, exchange)
            outcome = "disconnected" if exchange.gone.is_set() else "finished" if exchange.complete else "aborted"
        finally:
            watcher.cancel()
            with self._lock:
                record.outcome = outcome

    def _record(self, scope: Scope, body: bytes) -> Recorded:
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            key = name.decode("latin-1").lower()
            headers[key] = f"{headers[key]}, {value.decode('latin-1')}" if key in headers else value.decode("latin-1")
        try:
            parsed: Any = json.loads(body) if body else None
        except ValueError:
            parsed = body.decode(errors="replace")
        record = Recorded(method=scope["method"], path=scope["path"], headers=headers, body=parsed)
        with self._lock:
            self._records.append(record)
        return record

    async def _dispatch(self, scope: Scope, exchange: Exchange) -> None:
        route = self.routes().get((scope["method"], scope["path"]))
        if route is None:
            await exchange.json(404, self.error_body(404, f"no route {scope['method']} {scope['path']}"))
            return
        endpoint, handler = route
        if self.api_key is not None and self.presented_key(exchange.record.headers) != self.api_key:
            await exchange.json(401, self.error_body(401, None))
            return
        behaviour = self._next(endpoint)
        if behaviour.hang:
            await exchange.hang()
        elif behaviour.status is not None:
            if await exchange.pause(behaviour.first_token_delay):
                await exchange.json(
                    behaviour.status, self.error_body(behaviour.status, behaviour.error), behaviour.headers
                )
        else:
            await handler(exchange, behaviour)


def pieces(text: str, chunks: int | None) -> list[str]:
    """The text split as the double streams it: one piece per word (with its spaces), or `chunks` equal parts."""
    if chunks is None:
        return re.findall(r"\s*\S+\s*", text) or ([text] if text else [])
    size = len(text)
    parts = [text[size * i // chunks : size * (i + 1) // chunks] for i in range(chunks)]
    return [part for part in parts if part]


def answer_for(behaviour: Behaviour, system: str, user_messages: list[str]) -> str:
    return behaviour.text if behaviour.text is not None else default_answer(system, user_messages)


def word_count(*texts: str) -> int:
    return sum(len(text.split()) for text in texts)


def content_text(content: object) -> str:
    """A message's text, whether `content` is a string or a list of content blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(block.get("text", "") for block in content if isinstance(block, dict))
    return ""
