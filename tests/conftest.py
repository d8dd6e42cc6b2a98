"""Test fixtures: one real Postgres (embedded) per session, a migrated template, a fresh clone per test.

Set MEMEX_TEST_DATABASE_URL to run against another server (it needs pgvector and CREATE DATABASE rights).
"""

from __future__ import annotations

import itertools
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from memex.db import migrate
from memex.db.engine import libpq_url
from memex.embeddings.local import LocalEmbedder
from memex.runtime import Runtime, open_runtime
from memex.settings import Settings

pytest_plugins = ["tests.doubles.fixtures"]

DATA = Path(__file__).parent / "data"
TEMPLATE = "memex_template"
_counter = itertools.count()


def _with_database(url: str, name: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def pg_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A URL to the server's maintenance database."""
    external = os.environ.get("MEMEX_TEST_DATABASE_URL")
    if external:
        yield libpq_url(external)
        return
    from memex.db.embedded import EmbeddedPostgres

    # Short path: the Unix socket lives in the data folder and socket paths are limited to about 100 bytes.
    data_dir = Path(f"/tmp/memex-test-{os.getpid()}")
    server = EmbeddedPostgres(data_dir)
    yield server.url("postgres")
    server._server.cleanup()
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def template_url(pg_server_url: str) -> str:
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(TEMPLATE)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEMPLATE)))
    url = _with_database(pg_server_url, TEMPLATE)
    migrate.upgrade(url)
    return url


def clone_database(pg_server_url: str) -> str:
    """A new database cloned from the migrated template; returns its URL."""
    name = f"memex_test_{os.getpid()}_{next(_counter)}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
                sql.Identifier(name), sql.Identifier(TEMPLATE)
            )
        )
    return _with_database(pg_server_url, name)


def drop_database(pg_server_url: str, url: str) -> None:
    from sqlalchemy.engine import make_url

    name = make_url(url).database
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def database_url(pg_server_url: str, template_url: str) -> Iterator[str]:
    url = clone_database(pg_server_url)
    yield url
    drop_database(pg_server_url, url)


@pytest.fixture(scope="session")
def model_cache_dir() -> Path:
    return Settings().model_cache_dir


@pytest.fixture(scope="session")
def embedder(model_cache_dir: Path) -> LocalEmbedder:
    """The real local model, loaded once for the whole session."""
    return LocalEmbedder.load(model_cache_dir)


def make_settings(database_url: str, data_dir: Path, model_cache_dir: Path, **overrides: object) -> Settings:
    return Settings(
        database_url=database_url,  # type: ignore[arg-type]
        data_dir=data_dir,
        model_cache_dir=model_cache_dir,
        **overrides,  # type: ignore[arg-type]
    )


@pytest.fixture
def settings(database_url: str, tmp_path: Path, model_cache_dir: Path) -> Settings:
    return make_settings(database_url, tmp_path / "data", model_cache_dir)


@pytest.fixture
async def runtime(settings: Settings, embedder: LocalEmbedder) -> AsyncIterator[Runtime]:
    from memex.embeddings.cache import CachedEmbedder

    rt = await open_runtime(settings)
    rt.use_embedder(CachedEmbedder(embedder, size=settings.query_cache_size))
    yield rt
    await rt.close()


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:8]


def require(what: str, reason: str) -> None:
    """Skip locally when a part the test drives is missing; fail on CI, where it must be installed."""
    if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        pytest.fail(f"{what} is missing on CI: {reason}")
    pytest.skip(f"{what} is missing: {reason}")


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis server on a free loopback port, for the session."""
    binary = shutil.which("redis-server")
    if binary is None:
        require("redis-server", "install it with `apt-get install redis-server`")
    import socket
    import subprocess
    import time

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    workdir = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [
            str(binary),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                pytest.fail("redis-server did not start")
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    process.terminate()
    process.wait(timeout=10)
