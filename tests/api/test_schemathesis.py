"""Property-based: schemathesis sends generated requests to every operation of a real server; none may fail with 5xx.

The server is real uvicorn in a thread, with its own event loop and runtime on a database made for this module,
and the client authenticates as an admin with an all-scopes key, so requests reach past authentication.
Each operation is its own test, so one failure does not hide another.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import hypothesis
import hypothesis.errors
import pytest
import schemathesis
import uvicorn
from schemathesis.checks import not_a_server_error

from memex.accounts import keys, service
from memex.api.app import create_app
from memex.api.auth import PUBLIC_PATHS
from memex.embeddings.cache import CachedEmbedder
from memex.embeddings.local import LocalEmbedder
from memex.runtime import open_runtime
from memex.settings import Settings
from tests.conftest import clone_database, drop_database, make_settings
from tests.factories import password_hash


def _operations() -> list[tuple[str, str]]:
    # Building the app touches no database: its OpenAPI description lists the operations to test.
    spec = create_app(Settings(database_url="postgresql://collect-only/none")).openapi()  # type: ignore[arg-type]
    return [(method.upper(), path) for path, item in spec["paths"].items() for method in item]


@dataclass
class LiveServer:
    url: str
    key: str
    schema: schemathesis.BaseSchema


@pytest.fixture(scope="module")
def module_settings(
    pg_server_url: str, template_url: str, model_cache_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    url = clone_database(pg_server_url)
    yield make_settings(url, tmp_path_factory.mktemp("schemathesis"), model_cache_dir)
    drop_database(pg_server_url, url)


def _serve(
    settings: Settings, embedder: LocalEmbedder, sock: socket.socket, ready: threading.Event, stop: threading.Event
) -> None:
    async def main() -> None:
        runtime = await open_runtime(settings)
        runtime.use_embedder(CachedEmbedder(embedder, size=settings.query_cache_size))
        config = uvicorn.Config(
            create_app(settings, runtime=runtime), log_level="warning", lifespan="off", ws="none", http="h11"
        )
        server = uvicorn.Server(config)
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            await asyncio.sleep(0.02)
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.05)
        server.should_exit = True
        await serving
        await runtime.close()

    asyncio.run(main())


@pytest.fixture(scope="module")
async def live(module_settings: Settings, embedder: LocalEmbedder) -> AsyncIterator[LiveServer]:
    runtime = await open_runtime(module_settings, check_model=False)
    async with runtime.engine.begin() as conn:
        admin = await service.add_user(
            conn, email="fuzz-admin@example.com", password_hash=password_hash(), is_admin=True
        )
        new = await keys.create_key(
            conn, service.actor_for(admin), name="schemathesis", scopes=["read", "write", "admin"]
        )
    await runtime.close()

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    ready, stop = threading.Event(), threading.Event()
    thread = threading.Thread(target=_serve, args=(module_settings, embedder, sock, ready, stop), daemon=True)
    thread.start()
    assert ready.wait(60), "the server did not start"
    schema = schemathesis.openapi.from_dict(create_app(module_settings).openapi())
    server = LiveServer(url=f"http://127.0.0.1:{sock.getsockname()[1]}", key=new.secret, schema=schema)
    yield server
    stop.set()
    thread.join(30)
    sock.close()


def _run(
    live: LiveServer, operation: schemathesis.APIOperation, mode: schemathesis.GenerationMode, examples: int
) -> list[int]:
    statuses: list[int] = []

    def record(ctx: object, response: schemathesis.Response, case: schemathesis.Case) -> None:
        statuses.append(response.status_code)

    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    @hypothesis.settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(hypothesis.HealthCheck),
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    )
    def check(case: schemathesis.Case) -> None:
        headers = {"Authorization": f"Bearer {live.key}"}
        case.call_and_validate(base_url=live.url, headers=headers, checks=[not_a_server_error, record], timeout=30)

    check()
    return statuses


@pytest.mark.parametrize(("method", "path"), _operations(), ids=lambda v: str(v))
def test_no_server_errors(live: LiveServer, method: str, path: str) -> None:
    operation = live.schema[path][method]
    statuses = _run(live, operation, schemathesis.GenerationMode.POSITIVE, 10)
    if path not in PUBLIC_PATHS:  # (a login with generated credentials is refused, as it should be)
        assert statuses and set(statuses) != {401}, "the admin key must get past authentication"
    # An operation that takes no input has no invalid input to send.
    with contextlib.suppress(hypothesis.errors.Unsatisfiable):
        _run(live, operation, schemathesis.GenerationMode.NEGATIVE, 5)
