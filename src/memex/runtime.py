"""What a running Memex process holds: settings, the database engine, the embedder. Built once, passed down."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field

import structlog
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from memex.chat.llm import build_llm
from memex.chat.llm.base import Llm
from memex.db import migrate
from memex.db.embedded import EmbeddedPostgres
from memex.db.engine import create_engine
from memex.embeddings import build_embedder
from memex.embeddings import store as embedding_store
from memex.embeddings.base import Embedder
from memex.embeddings.cache import CachedEmbedder
from memex.embeddings.model_files import DIMENSION, MODEL_NAME
from memex.embeddings.spec import EmbeddingSpec, StoredModel
from memex.errors import ConfigurationError, DatabaseUnavailable, EmbeddingModelMismatch
from memex.ingest.sandbox import ParsePool
from memex.metrics import Metrics
from memex.ratelimit import RateLimits
from memex.settings import Settings

log = structlog.get_logger(__name__)


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    database_url: str
    embedded: EmbeddedPostgres | None = None
    metrics: Metrics = field(default_factory=Metrics, repr=False)
    # The model of the vectors in `chunks.embedding` and the swap generation it belongs to: the configured model
    # until `check_embedding_model` reads the record, then whatever `memex reembed` last swapped in.
    _spec: EmbeddingSpec | None = field(default=None, repr=False)
    _generation: int = 0
    _embedders: dict[EmbeddingSpec, Embedder] = field(default_factory=dict, repr=False)
    _llm: Llm | None = field(default=None, repr=False)
    _llm_built: bool = field(default=False, repr=False)
    _parse_pool: ParsePool | None = field(default=None, repr=False)
    # Per-process caches (safe to lose; another instance keeps its own): see chat/service.py.
    caches: dict[str, object] = field(default_factory=dict, repr=False)
    # Work that must finish even though the request that started it was cancelled (see `keep`).
    _tasks: set[asyncio.Task[None]] = field(default_factory=set, repr=False)

    @property
    def embedder(self) -> Embedder:
        """The model the stored vectors come from, loaded on first use and then kept."""
        spec = self._spec or EmbeddingSpec.from_settings(self.settings)
        found = self._embedders.get(spec)
        if found is None:
            found = self._embedders[spec] = build_embedder(self.settings, spec)
        return found

    @property
    def embedding_generation(self) -> int:
        """The swap generation `embedder` belongs to: chunk writers pass it, so a swap cannot slip in between."""
        return self._generation

    def use_embedder(self, embedder: Embedder) -> None:
        """Use an already loaded embedder for the configured model (a backup check borrows its process's)."""
        self._embedders[EmbeddingSpec.from_settings(self.settings)] = embedder

    async def load_embedder(self) -> Embedder:
        return await asyncio.to_thread(lambda: self.embedder)

    async def embedding_model(self) -> tuple[Embedder, int]:
        """The embedder and its generation, taken together."""
        embedder = await self.load_embedder()
        return embedder, self._generation

    async def refresh_embeddings(self) -> None:
        """Follow the model record after a swap by `memex reembed` (which another process made)."""
        async with self.engine.connect() as conn:
            found = await embedding_store.record(conn)
        if found is not None:
            await self.follow_embeddings(StoredModel.from_record(found, settings=self.settings))

    async def follow_embeddings(self, stored: StoredModel) -> None:
        if stored.generation == self._generation and self._spec is not None:
            return
        spec = stored.spec if not stored.spec.same_model(EmbeddingSpec.from_settings(self.settings)) else None
        if spec is not None and spec not in self._embedders:
            self._embedders[spec] = await asyncio.to_thread(build_embedder, self.settings, spec)
        previous = self._spec
        self._spec = spec or EmbeddingSpec.from_settings(self.settings)
        self._generation = stored.generation
        if previous is not None and previous != self._spec:
            log.info("embedding model followed", model=self._spec.describe(), generation=stored.generation)

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
        for embedder in self._embedders.values():
            if isinstance(embedder, CachedEmbedder):
                embedder.close()
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


async def check_embedding_model(runtime: Runtime) -> None:
    """Record the model on first use; refuse to run against vectors made by another model."""
    settings = runtime.settings
    configured = EmbeddingSpec.from_settings(settings)
    if configured.provider == "local" and (configured.name, configured.dimension) != (MODEL_NAME, DIMENSION):
        raise ConfigurationError(
            f"the local embedding provider has one model, {MODEL_NAME} ({DIMENSION} dimensions), not "
            f"{configured.describe()}: for another model, run an OpenAI-compatible embeddings server (Ollama, vLLM, "
            "llama.cpp, OpenAI) and set MEMEX_EMBEDDING_PROVIDER=openai and MEMEX_EMBEDDING_BASE_URL"
        )
    async with runtime.engine.begin() as conn:
        found = await embedding_store.insert_if_missing(conn, StoredModel(configured).record())
    stored = StoredModel.from_record(found, settings=settings)
    if not stored.spec.same_model(configured):
        raise EmbeddingModelMismatch(
            f"the database holds embeddings from {stored.spec.describe()} but Memex is configured for "
            f"{configured.describe()}: set MEMEX_EMBEDDING_MODEL and MEMEX_EMBEDDING_DIMENSION (and the provider) "
            "to the stored model, or run `memex reembed --model NAME --dimension N` to move the vectors to another"
        )
    runtime._spec, runtime._generation = configured, stored.generation
