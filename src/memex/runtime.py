"""What a running Memex process holds: settings, the database engine, the embedder. Built once, passed down."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from memex.chat.llm import build_llm
from memex.chat.llm.base import Llm
from memex.db import migrate
from memex.db.embedded import EmbeddedPostgres
from memex.db.engine import create_engine
from memex.embeddings import build_embedder
from memex.embeddings.base import Embedder
from memex.errors import DatabaseUnavailable, EmbeddingModelMismatch
from memex.ingest.sandbox import ParsePool
from memex.metrics import Metrics
from memex.ratelimit import RateLimits
from memex.settings import Settings


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    database_url: str
    embedded: EmbeddedPostgres | None = None
    metrics: Metrics = field(default_factory=Metrics, repr=False)
    _embedder: Embedder | None = field(default=None, repr=False)
    _llm: Llm | None = field(default=None, repr=False)
    _llm_built: bool = field(default=False, repr=False)
    _parse_pool: ParsePool | None = field(default=None, repr=False)
    # Per-process caches (safe to lose; another instance keeps its own): see chat/service.py.
    caches: dict[str, object] = field(default_factory=dict, repr=False)
    # Work that must finish even though the request that started it was cancelled (see `keep`).
    _tasks: set[asyncio.Task[None]] = field(default_factory=set, repr=False)

    @property
    def embedder(self) -> Embedder:
        """The embedding model, loaded on first use and then kept for the life of the process."""
        if self._embedder is None:
            self._embedder = build_embedder(self.settings)
        return self._embedder

    async def load_embedder(self) -> Embedder:
        return await asyncio.to_thread(lambda: self.embedder)

    @property
    def parse_pool(self) -> ParsePool:
        """The sandboxed parser processes every file is read in; they start on first use."""
        if self._parse_pool is None:
            self._parse_pool = ParsePool.from_settings(self.settings)
        return self._parse_pool

    @property
    def rate_limits(self) -> RateLimits:
        found = self.caches.get("rate_limits")
        if not isinstance(found, RateLimits):
            found = RateLimits(self.settings, metrics=self.metrics)
            self.caches["rate_limits"] = found
        return found

    @property
    def llm(self) -> Llm | None:
        """The chat model, or None when none is configured (answers are then extractive)."""
        if not self._llm_built:
            self._llm, self._llm_built = build_llm(self.settings), True
        return self._llm

    def keep(self, coro: Coroutine[object, object, None]) -> None:
        """Run `coro` to completion in the background, even if the caller is cancelled; awaited by `close`."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._llm is not None:
            await self._llm.aclose()
        if self._parse_pool is not None:
            await asyncio.to_thread(self._parse_pool.close)
        rate_limits = self.caches.get("rate_limits")
        if isinstance(rate_limits, RateLimits):
            await rate_limits.close()
        await self.engine.dispose()


def resolve_database_url(settings: Settings) -> tuple[str, EmbeddedPostgres | None]:
    """The database to use: MEMEX_DATABASE_URL, or the embedded server (started if needed)."""
    if settings.database_url is not None:
        return settings.database_url.get_secret_value(), None
    embedded = EmbeddedPostgres(settings.data_dir)
    embedded.ensure_database()
    return embedded.url(), embedded


async def open_runtime(settings: Settings, *, check_model: bool = True) -> Runtime:
    """Connect (starting the embedded server if needed), migrate under the advisory lock, check the model."""
    url, embedded = await asyncio.to_thread(resolve_database_url, settings)
    try:
        from memex.backup import preupgrade  # here: the backup package itself builds runtimes

        await asyncio.to_thread(migrate.upgrade, url, before=preupgrade.hook(settings))
    except OperationalError as exc:
        raise DatabaseUnavailable(f"cannot reach the database: {exc.orig}") from exc
    runtime = Runtime(
        settings=settings,
        engine=create_engine(url),
        database_url=url,
        embedded=embedded,
        metrics=Metrics(enabled=settings.metrics),
    )
    if check_model:
        await check_embedding_model(runtime)
    return runtime


_MODEL_KEY = "embedding_model"


async def record_embedding_model(
    conn: AsyncConnection, settings: Settings, *, replace: bool = False
) -> dict[str, object]:
    """Store the configured model as the one the vectors come from (first use, or after a reembed)."""
    wanted = {"name": settings.embedding_model, "dimension": settings.embedding_dimension}
    conflict = "DO UPDATE SET value = EXCLUDED.value" if replace else "DO NOTHING"
    await conn.execute(
        sa.text(
            f"INSERT INTO memex_meta (key, value) VALUES (:key, CAST(:value AS jsonb)) ON CONFLICT (key) {conflict}"
        ),
        {"key": _MODEL_KEY, "value": _json(wanted)},
    )
    stored: dict[str, object] = (
        await conn.execute(sa.text("SELECT value FROM memex_meta WHERE key = :key"), {"key": _MODEL_KEY})
    ).scalar_one()
    return stored


async def check_embedding_model(runtime: Runtime) -> None:
    """Record the model on first use; refuse to run against vectors made by another model."""
    wanted = {"name": runtime.settings.embedding_model, "dimension": runtime.settings.embedding_dimension}
    async with runtime.engine.begin() as conn:
        stored = await record_embedding_model(conn, runtime.settings)
    if stored != wanted:
        raise EmbeddingModelMismatch(
            f"the database holds embeddings from {stored['name']} ({stored['dimension']} dimensions) but Memex is "
            f"configured for {wanted['name']} ({wanted['dimension']}): run `memex reembed` to rebuild them, "
            "or set MEMEX_EMBEDDING_MODEL back"
        )


def _json(value: object) -> str:
    return json.dumps(value, sort_keys=True)
