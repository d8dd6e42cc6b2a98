"""`GET /metrics` in-process: who may scrape it, what it counts, and that its labels never carry ids or queries.

httpx's ASGITransport presents the client as 127.0.0.1 (loopback) unless told otherwise.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import create_async_engine

from memex.accounts.models import User
from memex.api.app import create_app
from memex.metrics import Metrics
from memex.runtime import Runtime
from memex.settings import Settings
from tests.factories import Factory
from tests.scrape import Scrape, promtool_check

NOT_FOUND = {"detail": "Not Found"}
LOCAL = "http://localhost"


def _client(app: FastAPI, *, host: str = "127.0.0.1", headers: dict[str, str] | None = None) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(host, 40000))
    return httpx.AsyncClient(transport=transport, base_url=LOCAL, headers=headers)


async def test_loopback_may_scrape_without_a_token_and_nobody_else_can(app: FastAPI) -> None:
    async with _client(app) as local:
        scraped = await local.get("/metrics")
        assert scraped.status_code == 200
        assert scraped.headers["content-type"].startswith("text/plain; version=0.0.4")
        assert Scrape.of(scraped.text).value("memex_build_info") == 1
        # A request that came through a proxy is not a local one, whatever address the proxy connects from.
        for header in ("X-Forwarded-For", "Forwarded", "X-Real-IP"):
            proxied = await local.get("/metrics", headers={header: "203.0.113.9"})
            assert (proxied.status_code, proxied.json()) == (404, NOT_FOUND)
    assert "/metrics" not in app.openapi()["paths"]
    for host in ("203.0.113.9", "10.0.0.2", "testclient"):
        async with _client(app, host=host) as remote:
            refused = await remote.get("/metrics")
            assert (refused.status_code, refused.json()) == (404, NOT_FOUND)


async def test_with_a_token_set_every_caller_must_send_it(settings: Settings, runtime: Runtime) -> None:
    app = create_app(settings.model_copy(update={"metrics_token": SecretStr("scrape-me-please")}), runtime=runtime)
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Bearer scrape-me-please-not"},
        {"Authorization": "Basic scrape-me-please"},
        {"Authorization": "scrape-me-please"},
    ):
        async with _client(app, headers=headers) as local:
            refused = await local.get("/metrics")
            assert (refused.status_code, refused.json()) == (404, NOT_FOUND), headers
    for host in ("127.0.0.1", "203.0.113.9"):
        async with _client(app, host=host, headers={"Authorization": "Bearer scrape-me-please"}) as scraper:
            assert (await scraper.get("/metrics")).status_code == 200


async def test_metrics_off_records_nothing_and_serves_nothing(app: FastAPI, runtime: Runtime) -> None:
    runtime.metrics = Metrics(enabled=False)
    async with _client(app) as local:
        assert (await local.get("/api/health")).status_code == 200
        refused = await local.get("/metrics")
        assert (refused.status_code, refused.json()) == (404, NOT_FOUND)
    assert runtime.metrics.http_requests.collect()[0].samples == []


async def test_requests_are_counted_by_route_template_and_the_database_gauges_are_read(
    make: Factory, app: FastAPI, alice: User
) -> None:
    _, key = await make.key(alice, scopes=("read", "write"))
    api = make.client(key=key, base_url=LOCAL)
    kb = await make.personal_kb(alice)
    await make.document(kb, name="otters.md", text="# Otters\n\nSea otters hold hands while they sleep.\n")
    queued = await api.post(f"/api/kbs/{kb.id}/documents", files=[("files", ("queued.md", b"# Queued\n\nWaits.\n"))])
    assert queued.status_code == 202, queued.text
    query = "otters holding hands"
    assert (await api.get("/api/search", params={"q": query})).json()["results"]
    missing = uuid.uuid4()
    assert (await api.get(f"/api/documents/{missing}")).status_code == 404
    assert (await api.get(f"/no/such/page/{missing}")).status_code == 404
    assert (await api.get("/static/nothing-here.js")).status_code == 404
    assert (await api.request("BREW", "/api/search")).status_code == 405

    async with _client(app) as local:
        text = (await local.get("/metrics")).text
    scrape = Scrape.of(text)
    count = "memex_http_requests_total"
    assert scrape.value(count, route="/api/search", method="GET", status="200") == 1
    assert scrape.value(count, route="/api/documents/{document_id}", method="GET", status="404") == 1
    assert scrape.value(count, route="/api/kbs/{kb}/documents", method="POST", status="202") == 1
    assert scrape.value(count, route="unmatched", status="404") == 1
    assert scrape.value(count, route="/static", status="404") == 1
    assert scrape.value(count, route="/api/search", method="other", status="405") == 1
    assert scrape.value("memex_search_duration_seconds_count", mode="hybrid") == 1
    assert scrape.value("memex_search_results_sum", mode="hybrid") >= 1
    assert scrape.value("memex_documents", status="indexed") == 1
    assert scrape.value("memex_documents", status="queued") == 1
    assert scrape.value("memex_queue_jobs", status="queued") == 1
    assert scrape.value("memex_queue_jobs", status="running") == 0
    assert 0 <= scrape.value("memex_queue_oldest_job_age_seconds") < 600
    assert scrape.value("memex_vectors") >= 1
    assert scrape.value("memex_blobs_size_bytes") > 0
    assert scrape.value("memex_database_size_bytes") > scrape.value("memex_blobs_size_bytes")
    for value in scrape.label_values():
        assert str(missing) not in value and str(kb.id) not in value and str(alice.id) not in value
        assert "otters" not in value and "@" not in value and "BREW" not in value
    promtool_check(text)


async def test_without_the_database_the_scrape_still_answers_without_its_gauges() -> None:
    engine = create_async_engine("postgresql+psycopg://nobody:nothing@127.0.0.1:1/none")
    try:
        body, _ = await Metrics().exposition(engine)
    finally:
        await engine.dispose()
    scrape = Scrape.of(body.decode())
    assert scrape.value("memex_build_info") == 1 and scrape.has("process_cpu_seconds_total")
    assert not scrape.has("memex_vectors") and not scrape.has("memex_queue_jobs")


def test_every_metric_is_in_the_readme() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    metrics = Metrics()
    families = [*metrics.registry.collect(), *metrics._snapshot.describe()]
    names = {f"{f.name}_total" if f.type == "counter" else f.name for f in families if f.name.startswith("memex_")}
    assert len(names) > 25
    for name in sorted(names):
        assert f"`{name}`" in readme, f"{name} is not in README.md's metrics table"
