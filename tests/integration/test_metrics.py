"""Prometheus metrics of real processes after real traffic: `memex serve --no-worker` at /metrics and
`memex worker --metrics-port`, both behind MEMEX_METRICS_TOKEN, scraped before and after uploads, ingestion,
searches (one past the rate limit), a chat answer from a model double, and failed logins up to a lockout."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import DATA, clone_database, drop_database
from tests.doubles.openai_server import OpenAIDouble
from tests.integration.test_serve import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    Served,
    free_port,
    memex_env,
    start_server,
    stop_server,
    wait_for,
)
from tests.scrape import Scrape, promtool_check

TOKEN = "metrics-token-for-the-tests"
SCRAPER = {"Authorization": f"Bearer {TOKEN}"}
PRICES = {"double-model": {"input": 1.5, "output": 2.5}}
QUERIES = ("how often are API keys rotated", "grace period for a rotated key", "signing key id")
NOT_FOUND = {"detail": "Not Found"}


@dataclass
class Stack:
    api: Served
    worker: subprocess.Popen[bytes]
    worker_log: Path
    worker_url: str
    env: dict[str, str]


@dataclass
class Traffic:
    before: Scrape
    after: Scrape
    worker: Scrape
    usage: dict[str, Any]
    secrets: list[str]


def _scrape(url: str) -> Scrape:
    response = httpx.get(url, headers=SCRAPER, timeout=30)
    assert response.status_code == 200, response.text
    return Scrape.of(response.text)


@pytest.fixture(scope="module")
def stack(
    pg_server_url: str,
    template_url: str,
    model_cache_dir: Path,
    openai_server: OpenAIDouble,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    database_url = clone_database(pg_server_url)
    home = tmp_path_factory.mktemp("metrics")
    env = memex_env(
        database_url,
        home / "data",
        model_cache_dir,
        MEMEX_METRICS_TOKEN=TOKEN,
        MEMEX_RATE_LIMIT_SEARCH="2/minute",
        MEMEX_LOGIN_MAX_ATTEMPTS="2",
        MEMEX_LLM_PROVIDER="openai",
        MEMEX_LLM_BASE_URL=openai_server.base_url,
        MEMEX_LLM_MODEL="double-model",
        MEMEX_LLM_API_KEY="sk-metrics-secret",
        MEMEX_LLM_PRICES=json.dumps(PRICES),
    )
    api = start_server(env=env, log=home / "serve.log", args=("--no-worker",))
    port = free_port()
    worker_log = home / "worker.log"
    with open(worker_log, "wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "memex", "worker", "--concurrency", "1", "--metrics-port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    stack = Stack(api=api, worker=worker, worker_log=worker_log, worker_url=f"http://127.0.0.1:{port}/metrics", env=env)

    def worker_up() -> bool:
        if worker.poll() is not None:
            raise AssertionError(f"memex worker exited with {worker.returncode}:\n{worker_log.read_text()}")
        try:
            return httpx.get(stack.worker_url, headers=SCRAPER, timeout=10).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(worker_up, timeout=180, what="the worker's metrics port")
        yield stack
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        stop_server(api)
        drop_database(pg_server_url, database_url)


@pytest.fixture(scope="module")
def traffic(stack: Stack) -> Traffic:
    metrics_url = f"{stack.api.url}/metrics"
    before = _scrape(metrics_url)
    with stack.api.client() as api:
        me = api.get("/api/auth/me").json()
        kb = next(kb for kb in api.get("/api/kbs").json() if kb["is_personal"])
        files = [("files", (name, (DATA / name).read_bytes())) for name in ("sample.md", "corrupt.pdf")]
        uploaded = api.post(f"/api/kbs/{kb['id']}/documents", files=files)
        assert uploaded.status_code == 202, uploaded.text
        documents = {d["name"]: d["id"] for d in uploaded.json()["documents"]}

        def settled() -> bool:
            statuses = {name: api.get(f"/api/documents/{id_}").json()["status"] for name, id_ in documents.items()}
            return statuses == {"sample.md": "indexed", "corrupt.pdf": "failed"}

        wait_for(settled, timeout=180, what="the worker to index sample.md and fail corrupt.pdf")
        for query in QUERIES[:2]:
            found = api.get("/api/search", params={"q": query})
            assert found.status_code == 200 and found.json()["results"], found.text
        assert api.get("/api/search", params={"q": QUERIES[2]}).status_code == 429
        answer = api.post("/api/chat", json={"message": "How often are API keys rotated?", "stream": False})
        assert answer.status_code == 200, answer.text
        assert answer.json()["model"] == "double-model"
    with httpx.Client(base_url=stack.api.url, timeout=30) as browser:
        login = "/api/auth/login"
        assert browser.post(login, json={"email": "nobody@example.com", "password": "guess"}).status_code == 401
        assert browser.post(login, json={"email": ADMIN_EMAIL, "password": "wrong one"}).status_code == 401
        assert browser.post(login, json={"email": ADMIN_EMAIL, "password": "wrong two"}).status_code == 401
        assert browser.post(login, json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}).status_code == 429

    def gauges_current() -> Scrape | None:
        # The database-wide gauges are reread at most every few seconds.
        scrape = _scrape(metrics_url)
        return scrape if scrape.value("memex_documents", status="failed") == 1 else None

    after = wait_for(gauges_current, timeout=30, what="the gauges to show the failed document")
    worker = _scrape(stack.worker_url)
    secrets = [
        me["user"]["id"],
        ADMIN_EMAIL,
        kb["id"],
        *documents.values(),
        *documents.keys(),
        *QUERIES,
        "rotated",
        "nobody@example.com",
        stack.api.key,
        TOKEN,
    ]
    return Traffic(before=before, after=after, worker=worker, usage=answer.json()["usage"], secrets=secrets)


def _moved(traffic: Traffic, name: str, **labels: str) -> float:
    return traffic.after.value(name, **labels) - traffic.before.value(name, **labels)


def test_http_search_and_rate_limit_metrics_moved(traffic: Traffic) -> None:
    requests = "memex_http_requests_total"
    assert _moved(traffic, requests, route="/api/search", method="GET", status="200") == 2
    assert _moved(traffic, requests, route="/api/search", method="GET", status="429") == 1
    assert _moved(traffic, requests, route="/api/kbs/{kb}/documents", method="POST", status="202") == 1
    assert _moved(traffic, requests, route="/api/chat", method="POST", status="200") == 1
    assert _moved(traffic, "memex_http_request_duration_seconds_count", route="/api/search", status="200") == 2
    assert _moved(traffic, "memex_http_request_duration_seconds_sum", route="/api/search") > 0
    assert _moved(traffic, "memex_rate_limited_requests_total", bucket="search") == 1
    # Two searches through the API and one for the chat question's retrieval.
    assert _moved(traffic, "memex_search_duration_seconds_count", mode="hybrid") == 3
    assert _moved(traffic, "memex_search_embedding_duration_seconds_count") == 3
    assert _moved(traffic, "memex_search_sql_duration_seconds_count", mode="hybrid") == 3
    assert _moved(traffic, "memex_search_sql_duration_seconds_sum", mode="hybrid") > 0
    assert _moved(traffic, "memex_search_results_sum", mode="hybrid") >= 3
    assert _moved(traffic, "memex_search_results_bucket", mode="hybrid", le="0.0") == 0


def test_chat_metrics_count_the_answer_its_tokens_and_cost(traffic: Traffic) -> None:
    model = {"provider": "openai", "model": "double-model"}
    assert _moved(traffic, "memex_chat_answers_total", outcome="model", **model) == 1
    assert _moved(traffic, "memex_chat_retrieval_duration_seconds_count") == 1
    assert _moved(traffic, "memex_chat_time_to_first_token_seconds_count", **model) == 1
    assert _moved(traffic, "memex_chat_time_to_first_token_seconds_sum", **model) > 0
    assert _moved(traffic, "memex_chat_generation_duration_seconds_count", **model) == 1
    assert _moved(traffic, "memex_chat_grounding_duration_seconds_count") == 1
    usage = traffic.usage
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert _moved(traffic, "memex_llm_tokens_total", type="prompt", **model) == usage["prompt_tokens"]
    assert _moved(traffic, "memex_llm_tokens_total", type="completion", **model) == usage["completion_tokens"]
    price = PRICES["double-model"]
    cost = (usage["prompt_tokens"] * price["input"] + usage["completion_tokens"] * price["output"]) / 1e6
    assert _moved(traffic, "memex_llm_estimated_cost_total", **model) == pytest.approx(cost) == usage["cost"]


def test_login_failures_and_the_lockout_are_counted(traffic: Traffic) -> None:
    failures = "memex_login_failures_total"
    assert _moved(traffic, failures, reason="unknown_email") == 1
    assert _moved(traffic, failures, reason="wrong_password") == 2
    assert _moved(traffic, failures, reason="locked") == 1
    assert _moved(traffic, "memex_account_lockouts_total") == 1


def test_database_gauges_and_build_info(traffic: Traffic) -> None:
    after, worker = traffic.after, traffic.worker
    assert after.value("memex_documents", status="indexed") == 1
    assert after.value("memex_documents", status="failed") == 1
    assert after.value("memex_documents", status="queued") == 0
    assert after.value("memex_vectors") == worker.value("memex_ingest_chunks_total") > 0
    sizes = sum((DATA / name).stat().st_size for name in ("sample.md", "corrupt.pdf"))
    assert after.value("memex_blobs_size_bytes") == sizes
    assert after.value("memex_database_size_bytes") > sizes
    assert after.has("memex_queue_jobs") and after.value("memex_queue_oldest_job_age_seconds") >= 0
    assert [labels for name, labels, _ in after.samples if name == "memex_build_info"] == [{"version": "0.1.0"}]
    assert after.value("process_resident_memory_bytes") > 0


def test_the_worker_counts_what_it_ingested(traffic: Traffic) -> None:
    worker = traffic.worker
    assert worker.value("memex_ingest_documents_total", outcome="indexed") == 1
    assert worker.value("memex_ingest_documents_total", outcome="failed") == 1
    assert worker.value("memex_ingest_document_duration_seconds_count") == 1
    assert worker.value("memex_ingest_document_duration_seconds_sum") > 0
    assert worker.value("memex_ingest_embedding_tokens_total") >= worker.value("memex_ingest_chunks_total") > 0
    # The API process ran no jobs; the database-wide gauges are on both.
    assert traffic.after.value("memex_ingest_documents_total") == 0
    assert worker.value("memex_documents", status="indexed") == 1


def test_labels_carry_no_ids_paths_queries_or_secrets(traffic: Traffic) -> None:
    for scrape in (traffic.after, traffic.worker):
        for value in scrape.label_values():
            for secret in traffic.secrets:
                assert secret not in value, (secret, value)
            assert "@" not in value
    routes = {labels["route"] for name, labels, _ in traffic.after.samples if "route" in labels}
    assert routes >= {"/api/search", "/api/kbs/{kb}/documents", "/api/documents/{document_id}", "/metrics"}


def test_promtool_accepts_the_expositions(traffic: Traffic) -> None:
    promtool_check(traffic.after.text)
    promtool_check(traffic.worker.text)


def test_the_token_is_required_even_from_loopback(stack: Stack) -> None:
    for url in (f"{stack.api.url}/metrics", stack.worker_url):
        for headers in ({}, {"Authorization": "Bearer not-the-token"}, {"Authorization": f"Bearer {stack.api.key}"}):
            refused = httpx.get(url, headers=headers, timeout=30)
            assert (refused.status_code, refused.json()) == (404, NOT_FOUND), (url, headers)
        assert httpx.get(url, headers=SCRAPER, timeout=30).status_code == 200
    assert "/metrics" not in httpx.get(f"{stack.api.url}/openapi.json", timeout=30).json()["paths"]


def test_the_worker_refuses_a_port_in_use(stack: Stack) -> None:
    port = stack.worker_url.split(":")[2].split("/")[0]
    done = subprocess.run(
        [sys.executable, "-m", "memex", "worker", "--metrics-port", port],
        capture_output=True,
        text=True,
        env=stack.env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert f"cannot serve metrics on 127.0.0.1:{port}" in " ".join(done.stderr.split())
