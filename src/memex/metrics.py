"""Every Prometheus metric Memex exports, and the scrape that serves them.

Each Runtime owns one `Metrics` with its own registry: a process has one runtime (the API and its in-process
worker share it), so that is one registry per process, and tests can build as many apps as they like without
colliding in prometheus-client's global registry. Services record through the methods below; names and labels
are decided here only. Labels take values from small fixed sets (route templates, modes, outcomes, the
configured model), never user ids, paths or queries.

Database-wide gauges (queue, documents, vectors, storage) are read at scrape time by `exposition`, which runs
one cheap query asynchronously (collectors are sync) and reuses its answer for SNAPSHOT_SECONDS.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Iterator
from importlib.metadata import PackageNotFoundError, version

import sqlalchemy as sa
import structlog
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncEngine

from memex.db import store as db_store

log = structlog.get_logger("memex.metrics")

# How long a scrape reuses the last reading of the database-wide gauges, so that several scrapers (or a
# dashboard refreshing often) cost one query.
SNAPSHOT_SECONDS = 5.0
SNAPSHOT_TIMEOUT_SECONDS = 5.0

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_FAST = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_MODEL = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)
_DOCUMENT = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
_RESULTS = (0, 1, 5, 10, 20, 50, 100, 200)

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
DOCUMENT_STATUSES = ("queued", "indexing", "indexed", "failed")


def _version() -> str:
    try:
        return version("memex")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


class _Snapshot(Collector):
    """The database-wide gauges, from the last reading `Metrics.refresh` took (none yet: nothing is exported)."""

    def __init__(self) -> None:
        self.row: sa.Row[tuple[object, ...]] | None = None
        self.taken_at = float("-inf")

    def describe(self) -> Iterable[Metric]:
        return list(self._families(None))

    def collect(self) -> Iterable[Metric]:
        return list(self._families(self.row)) if self.row is not None else []

    def _families(self, row: sa.Row[tuple[object, ...]] | None) -> Iterator[Metric]:
        jobs = GaugeMetricFamily(
            "memex_queue_jobs", "Jobs in the queue, by status (queued, running).", labels=["status"]
        )
        oldest = GaugeMetricFamily(
            "memex_queue_oldest_job_age_seconds", "How long the oldest queued job that is due has waited (0 if none)."
        )
        vectors = GaugeMetricFamily("memex_vectors", "Chunk embeddings stored (one per chunk).")
        documents = GaugeMetricFamily("memex_documents", "Documents, by status.", labels=["status"])
        database = GaugeMetricFamily("memex_database_size_bytes", "Size of the database on disk (blobs included).")
        blobs = GaugeMetricFamily("memex_blobs_size_bytes", "Bytes of the original files kept in the database.")
        backup = GaugeMetricFamily(
            "memex_backup_last_success_timestamp_seconds", "When the last backup was written (Unix time; 0: never)."
        )
        verified = GaugeMetricFamily(
            "memex_backup_last_verified_timestamp_seconds",
            "When a backup last passed verification by the scheduled job (Unix time; 0: never).",
        )
        if row is not None:
            jobs.add_metric(["queued"], float(row.queued))
            jobs.add_metric(["running"], float(row.running))
            oldest.add_metric([], float(row.oldest_queued_seconds))
            vectors.add_metric([], float(row.vectors))
            counts: dict[str, int] = {status: 0 for status in DOCUMENT_STATUSES} | dict(row.documents)
            for status, count in sorted(counts.items()):
                documents.add_metric([status], float(count))
            database.add_metric([], float(row.database_bytes))
            blobs.add_metric([], float(row.blob_bytes))
            backup.add_metric([], float(row.backup_at or 0))
            verified.add_metric([], float(row.backup_verified_at or 0))
        yield from (jobs, oldest, vectors, documents, database, blobs, backup, verified)


class Metrics:
    """The metrics of one process. With `enabled=False` nothing is recorded and there is nothing to scrape."""

    def __init__(self, *, enabled: bool = True) -> None:
        self.enabled = enabled
        # `_created` series double what Prometheus stores and nothing of ours reads them.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = r = CollectorRegistry()
        self.http_requests = Counter(
            "memex_http_requests",
            "HTTP requests answered, by route template, method and status.",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_duration = Histogram(
            "memex_http_request_duration_seconds",
            "Time to answer an HTTP request, up to its response headers (a streamed answer's body is not included).",
            ["method", "route", "status"],
            buckets=_LATENCY,
            registry=r,
        )
        self.search_duration = Histogram(
            "memex_search_duration_seconds",
            "Searches, from the request to the ranked results, by mode.",
            ["mode"],
            buckets=_FAST,
            registry=r,
        )
        self.search_embedding = Histogram(
            "memex_search_embedding_duration_seconds",
            "Embedding a search query (hybrid and vector searches).",
            buckets=_FAST,
            registry=r,
        )
        self.search_sql = Histogram(
            "memex_search_sql_duration_seconds",
            "Database time of a search (access lookup and ranking query), not counting the wait for the embedding.",
            ["mode"],
            buckets=_FAST,
            registry=r,
        )
        self.search_results = Histogram(
            "memex_search_results", "Results returned by a search.", ["mode"], buckets=_RESULTS, registry=r
        )
        self.chat_answers = Counter(
            "memex_chat_answers",
            "Chat answers, by the model that wrote them and outcome: model, extractive (no model or nothing found), "
            "fallback (the model failed; answered extractively), error, cancelled (the client left).",
            ["provider", "model", "outcome"],
            registry=r,
        )
        self.chat_retrieval = Histogram(
            "memex_chat_retrieval_duration_seconds",
            "Retrieval for a chat question (rewrite and search).",
            buckets=_FAST,
            registry=r,
        )
        self.chat_ttft = Histogram(
            "memex_chat_time_to_first_token_seconds",
            "From a chat question to the first token of its answer.",
            ["provider", "model"],
            buckets=_MODEL,
            registry=r,
        )
        self.chat_generation = Histogram(
            "memex_chat_generation_duration_seconds",
            "From the first token of an answer to its last.",
            ["provider", "model"],
            buckets=_MODEL,
            registry=r,
        )
        self.chat_grounding = Histogram(
            "memex_chat_grounding_duration_seconds",
            "Checking that an answer's sentences are supported by its sources.",
            buckets=_FAST,
            registry=r,
        )
        self.llm_tokens = Counter(
            "memex_llm_tokens",
            "Language model tokens used, by provider, model and type (prompt, completion).",
            ["provider", "model", "type"],
            registry=r,
        )
        self.llm_cost = Counter(
            "memex_llm_estimated_cost",
            "Estimated language model cost, in the currency of MEMEX_LLM_PRICES (unpriced models cost 0).",
            ["provider", "model"],
            registry=r,
        )
        self.ingest_documents = Counter(
            "memex_ingest_documents",
            "Documents ingested, by outcome: indexed, failed, retried (an attempt failed).",
            ["outcome"],
            registry=r,
        )
        self.ingest_chunks = Counter("memex_ingest_chunks", "Chunks written by ingestion.", registry=r)
        self.ingest_tokens = Counter(
            "memex_ingest_embedding_tokens", "Tokens of the chunks embedded by ingestion.", registry=r
        )
        self.ingest_duration = Histogram(
            "memex_ingest_document_duration_seconds",
            "Time to parse, chunk, embed and store one document.",
            buckets=_DOCUMENT,
            registry=r,
        )
        self.login_failures = Counter(
            "memex_login_failures",
            "Refused password logins, by reason: unknown_email, wrong_password, disabled, locked (the client "
            "address was backing off from the account).",
            ["reason"],
            registry=r,
        )
        self.lockouts = Counter(
            "memex_account_lockouts",
            "Failed logins that made a client address wait before its next attempt at the account (back-off).",
            registry=r,
        )
        self.rate_limited = Counter(
            "memex_rate_limited_requests", "Requests refused by a rate limit, by bucket.", ["bucket"], registry=r
        )
        build = Gauge(
            "memex_build_info", "Memex's version (always 1; python_info has Python's).", ["version"], registry=r
        )
        build.labels(_version()).set(1)
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        self._snapshot = _Snapshot()
        r.register(self._snapshot)
        self._refreshing = asyncio.Lock()

    # Recording

    def request(self, *, method: str, route: str, status: int, seconds: float) -> None:
        if not self.enabled:
            return
        method = method if method in HTTP_METHODS else "other"
        self.http_requests.labels(method, route, str(status)).inc()
        self.http_duration.labels(method, route, str(status)).observe(seconds)

    def searched(
        self, *, mode: str, seconds: float, embedding_seconds: float | None, sql_seconds: float, results: int
    ) -> None:
        if not self.enabled:
            return
        self.search_duration.labels(mode).observe(seconds)
        if embedding_seconds is not None:
            self.search_embedding.observe(embedding_seconds)
        self.search_sql.labels(mode).observe(sql_seconds)
        self.search_results.labels(mode).observe(results)

    def chat_answered(
        self,
        *,
        provider: str,
        model: str,
        outcome: str,
        retrieval_seconds: float,
        ttft_seconds: float | None,
        generation_seconds: float,
        grounding_seconds: float,
        prompt_tokens: int,
        completion_tokens: int,
        cost: float,
    ) -> None:
        if not self.enabled:
            return
        self.chat_answers.labels(provider, model, outcome).inc()
        self.chat_retrieval.observe(retrieval_seconds)
        if ttft_seconds is not None:
            self.chat_ttft.labels(provider, model).observe(ttft_seconds)
        self.chat_generation.labels(provider, model).observe(generation_seconds)
        self.chat_grounding.observe(grounding_seconds)
        if prompt_tokens or completion_tokens:
            self.llm_tokens.labels(provider, model, "prompt").inc(prompt_tokens)
            self.llm_tokens.labels(provider, model, "completion").inc(completion_tokens)
            self.llm_cost.labels(provider, model).inc(cost)

    def chat_ended(self, *, provider: str, model: str, outcome: str) -> None:
        """An answer that never completed (error, cancelled)."""
        if self.enabled:
            self.chat_answers.labels(provider, model, outcome).inc()

    def document_ingested(
        self, outcome: str, *, seconds: float | None = None, chunks: int = 0, tokens: int = 0
    ) -> None:
        if not self.enabled:
            return
        self.ingest_documents.labels(outcome).inc()
        if seconds is not None:
            self.ingest_duration.observe(seconds)
        if chunks:
            self.ingest_chunks.inc(chunks)
            self.ingest_tokens.inc(tokens)

    def login_failed(self, reason: str, *, locked_now: bool = False) -> None:
        if not self.enabled:
            return
        self.login_failures.labels(reason).inc()
        if locked_now:
            self.lockouts.inc()

    def limited(self, bucket: str) -> None:
        if self.enabled:
            self.rate_limited.labels(bucket).inc()

    # Scraping

    async def refresh(self, engine: AsyncEngine) -> None:
        """Read the database-wide gauges, unless the last reading is recent; a failure leaves them out."""
        async with self._refreshing:
            if time.monotonic() - self._snapshot.taken_at < SNAPSHOT_SECONDS:
                return
            try:
                async with asyncio.timeout(SNAPSHOT_TIMEOUT_SECONDS), engine.begin() as conn:
                    self._snapshot.row = await db_store.gauges(conn)
            except Exception as exc:  # a database outage must not take the process metrics down with it
                log.warning("metrics: cannot read the database-wide gauges", error=str(exc) or type(exc).__name__)
                self._snapshot.row = None
            self._snapshot.taken_at = time.monotonic()

    async def exposition(self, engine: AsyncEngine, *, accept: str = "") -> tuple[bytes, str]:
        """The exposition body and its content type, in the format the scraper asked for."""
        await self.refresh(engine)
        encode, content_type = choose_encoder(accept)
        return encode(self.registry), content_type
