"""The deployment on real parts, on loopback: nginx (deploy/nginx, a self-signed certificate) in front of two
`memex serve --no-worker`, one `memex worker`, a standalone PostgreSQL reached by MEMEX_DATABASE_URL, and Redis.

Upload through nginx, indexed by the worker, found by both instances; a chat answer streamed through nginx token
by token; one rate limit across instances; nginx's own limits; an instance killed without a failed request."""

from __future__ import annotations

import json
import signal
import ssl
import subprocess
import sys
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import require
from tests.deploy.parts import (
    Nginx,
    Prometheus,
    free_port,
    nginx_binary,
    self_signed_certificate,
    start_nginx,
    start_postgres,
    start_prometheus,
    stop_postgres,
)
from tests.deploy.test_monitoring import dashboard_queries
from tests.doubles.openai_server import OpenAIDouble
from tests.doubles.script import reply
from tests.integration.test_serve import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    Served,
    memex_env,
    start_server,
    wait_for,
)

pytestmark = pytest.mark.slow

NOTE = "# Lighthouse keeping\n\nThe lighthouse keeper winds the clockwork lamp every evening at dusk.\n"
SEARCH_LIMIT = 8


@dataclass
class Stack:
    nginx: Nginx
    apis: list[Served]
    worker: subprocess.Popen[bytes]
    cert: Path
    key: str
    env: dict[str, str]
    prometheus: str

    def client(self, key: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=self.nginx.url,
            verify=ssl.create_default_context(cafile=str(self.cert)),
            headers={"Authorization": f"Bearer {key or self.key}"},
            timeout=30,
        )


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, model_cache_dir: Path, redis_url: str, openai_server: OpenAIDouble
) -> Iterator[Stack]:
    binary = nginx_binary()
    if binary is None:
        require("nginx", "install it with `apt-get install nginx`")
    assert binary is not None
    home = tmp_path_factory.mktemp("deploy")
    database_url = start_postgres(home / "pg")
    env = memex_env(
        database_url,
        home / "data",
        model_cache_dir,
        MEMEX_REDIS_URL=redis_url,
        MEMEX_LLM_PROVIDER="openai",
        MEMEX_LLM_BASE_URL=openai_server.base_url,
        MEMEX_LLM_MODEL="double-model",
        MEMEX_LLM_API_KEY="sk-deploy-test",
        MEMEX_RATE_LIMIT_SEARCH=f"{SEARCH_LIMIT}/minute",
        MEMEX_TRUSTED_PROXIES="127.0.0.1",  # nginx
    )
    apis: list[Served] = []
    worker: subprocess.Popen[bytes] | None = None
    nginx: Nginx | None = None
    prometheus: Prometheus | None = None
    try:
        # The first instance migrates and creates the admin; the worker and the second instance then start together.
        apis.append(
            start_server(
                env=env | {"MEMEX_DATA_DIR": str(home / "api-1")}, log=home / "api-1.log", args=("--no-worker",)
            )
        )
        worker_port = free_port()
        with open(home / "worker.log", "wb") as out:
            worker = subprocess.Popen(
                [sys.executable, "-m", "memex", "worker", "--concurrency", "2", "--metrics-port", str(worker_port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env | {"MEMEX_DATA_DIR": str(home / "worker")},
            )
        apis.append(
            start_server(
                env=env | {"MEMEX_DATA_DIR": str(home / "api-2")}, log=home / "api-2.log", args=("--no-worker",)
            )
        )
        cert, key = self_signed_certificate(home / "tls")
        nginx = start_nginx(
            binary, home / "nginx", upstreams=[f"127.0.0.1:{api.port}" for api in apis], cert=cert, key=key
        )
        targets = [f"127.0.0.1:{api.port}" for api in apis] + [f"127.0.0.1:{worker_port}"]
        prometheus = start_prometheus(home / "prometheus", targets)
        yield Stack(
            nginx=nginx, apis=apis, worker=worker, cert=cert, key=apis[0].key, env=env, prometheus=prometheus.url
        )
    finally:
        # Everything is asked to stop first, then waited for.
        for part in (prometheus, nginx):
            if part is not None:
                part.stop()
        for process in [api.process for api in apis] + ([worker] if worker is not None else []):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in [api.process for api in apis] + ([worker] if worker is not None else []):
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        stop_postgres(home / "pg")


def _direct(served: Served, key: str) -> httpx.Client:
    return httpx.Client(base_url=served.url, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def test_plain_http_redirects_and_tls_is_1_2_or_newer(stack: Stack) -> None:
    plain = httpx.get(f"http://127.0.0.1:{stack.nginx.http_port}/api/health?x=1")
    assert plain.status_code == 301
    assert plain.headers["location"] == "https://127.0.0.1/api/health?x=1"
    assert httpx.get(f"http://127.0.0.1:{stack.nginx.http_port}/nginx-health").text == "ok\n"
    with stack.client() as api:
        health = api.get("/api/health")
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        stream = health.extensions["network_stream"]
        assert stream.get_extra_info("ssl_object").version() in ("TLSv1.2", "TLSv1.3")
        assert health.headers["strict-transport-security"] == "max-age=31536000"
        assert health.headers["x-content-type-options"] == "nosniff"
        assert "server" not in health.headers or "nginx/" not in health.headers["server"]
    old = ssl.create_default_context(cafile=str(stack.cert))
    with warnings.catch_warnings():  # TLS 1.1 is deprecated: that is the point
        warnings.simplefilter("ignore", DeprecationWarning)
        old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{stack.nginx.url}/api/health", verify=old)


def test_upload_through_nginx_is_indexed_by_the_worker_and_found_by_both_instances(stack: Stack) -> None:
    with stack.client() as api:
        kb = api.post("/api/kbs", json={"name": "deploy"}).json()
        sent = api.post(
            f"/api/kbs/{kb['id']}/documents",
            files={"files": ("lighthouse.md", NOTE.encode())},
            headers={"X-Request-ID": "deploy-upload-1"},
        )
        assert sent.status_code == 202, sent.text
        assert sent.headers["x-request-id"] == "deploy-upload-1"
        assert sent.headers["x-content-type-options"] == "nosniff"
        doc = sent.json()["documents"][0]["id"]
        wait_for(
            lambda: api.get(f"/api/documents/{doc}").json()["status"] == "indexed",
            timeout=120,
            what="the worker to index the upload",
        )
        assert api.get("/api/search", params={"q": "clockwork lamp"}).json()["results"][0]["document_id"] == doc
        generated = api.get("/api/health").headers["x-request-id"]
        assert len(generated) >= 16  # nginx's $request_id, passed on and returned
    for served in stack.apis:
        with _direct(served, stack.key) as direct:
            results = direct.get("/api/search", params={"q": "who winds the lamp"}).json()["results"]
            assert results and results[0]["document_id"] == doc, served.url


def test_a_chat_answer_streams_through_nginx_token_by_token(stack: Stack, openai_double: OpenAIDouble) -> None:
    openai_double.push(reply("The keeper winds the lamp at dusk [1].", chunks=6, token_delay=0.3))
    events: list[tuple[str, dict[str, object]]] = []
    active_at_first_token: bool | None = None
    with (
        stack.client() as api,
        api.stream("POST", "/api/chat", json={"message": "When is the lamp wound?", "stream": True}) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        event = ""
        for line in response.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                events.append((event, json.loads(line.split(":", 1)[1])))
                if event == "token" and active_at_first_token is None:
                    # The double has not sent its last piece yet: nothing waited for the whole answer.
                    active_at_first_token = openai_double.generations[-1].outcome == "active"
    assert active_at_first_token is True
    names = [name for name, _ in events]
    assert names.count("token") >= 2 and names[-1] == "done", names
    assert "".join(str(data["text"]) for name, data in events if name == "token").startswith("The keeper")


def test_the_rate_limit_is_shared_by_the_instances(stack: Stack) -> None:
    # A key of its own, so that its budget is untouched (keys are made with a session).
    with httpx.Client(base_url=stack.apis[1].url, timeout=30) as browser:
        login = browser.post("/api/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
        made = browser.post(
            "/api/keys",
            json={"name": "limited", "scopes": ["read"]},
            headers={"X-CSRF-Token": login.json()["csrf_token"]},
        )
        assert made.status_code == 201, made.text
        key = made.json()["key"]
    statuses = []
    for n in range(SEARCH_LIMIT):
        with _direct(stack.apis[n % 2], key) as direct:
            statuses.append(direct.get("/api/search", params={"q": "lamp"}).status_code)
    assert statuses == [200] * SEARCH_LIMIT
    for served in stack.apis:
        with _direct(served, key) as direct:
            refused = direct.get("/api/search", params={"q": "lamp"})
            assert refused.status_code == 429 and refused.headers["ratelimit-limit"], served.url
    with stack.client(key) as api:
        through = api.get("/api/search", params={"q": "lamp"})
        assert through.status_code == 429 and "retry-after" in through.headers


def test_nginx_limits_logins_per_address(stack: Stack) -> None:
    def attempt(n: int) -> tuple[int, str, bool]:
        # A different unknown account each time: Memex's own per-account limit stays out of the way.
        with stack.client() as api:
            answer = api.post("/api/auth/login", json={"email": f"nobody{n}@example.com", "password": "wrong password"})
        return answer.status_code, answer.json()["detail"], "ratelimit-limit" in answer.headers

    # All at once: the zone lets one request and a burst of 10 through, and refuses the rest at once.
    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(attempt, range(16)))
    by_nginx = [a for a in answers if a[1].startswith("too many requests from this address")]
    by_memex = [a for a in answers if a not in by_nginx]
    assert 1 <= len(by_nginx) <= 5, answers
    assert all(status == 429 and not memex_headers for status, _, memex_headers in by_nginx)  # nginx's, not Memex's
    assert {status for status, _, _ in by_memex} == {401}, by_memex


def test_nginx_refuses_an_upload_over_the_limit_before_memex(stack: Stack) -> None:
    with stack.client() as api:
        kb = api.get("/api/kbs").json()[0]
        big = api.post(f"/api/kbs/{kb['id']}/documents", files={"files": ("big.md", b"a" * (26 * 1024 * 1024))})
    assert big.status_code == 413
    assert big.json()["detail"] == "the request body is larger than the limit of 25 MiB"


def test_every_dashboard_query_and_alert_rule_runs_on_a_real_prometheus(stack: Stack) -> None:
    """Prometheus scrapes both instances and the worker; every query of the dashboard runs without error, and
    returns data where the tests above exercised its metric (all but the backup, which these tests never make)."""
    never_exercised = {"Last good backup"}

    def query(expr: str) -> list[dict[str, Any]]:
        answer = httpx.get(f"{stack.prometheus}/api/v1/query", params={"query": expr}, timeout=30).json()
        assert answer["status"] == "success", (expr, answer)
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    wait_for(lambda: len(query('up{job="memex"} == 1')) == 3, timeout=60, what="Prometheus to scrape all three")
    for title, expr in dashboard_queries():
        promql = expr.replace("$__rate_interval", "1m")
        if title in never_exercised:
            query(promql)
        else:
            wait_for(lambda promql=promql: query(promql), timeout=60, what=f"data for {title!r}: {promql}")  # type: ignore[misc]

    def evaluated() -> bool:
        fresh = httpx.get(f"{stack.prometheus}/api/v1/rules", timeout=30).json()["data"]["groups"][0]["rules"]
        return all(rule.get("lastEvaluation", "").startswith("2") and rule["health"] != "unknown" for rule in fresh)

    wait_for(evaluated, timeout=60, what="every alert rule to be evaluated")
    rules = httpx.get(f"{stack.prometheus}/api/v1/rules", timeout=30).json()["data"]["groups"][0]["rules"]
    assert [(rule["name"], rule.get("lastError")) for rule in rules if rule["health"] != "ok"] == []
    # For the memory limits in deploy/: printed with `pytest -s`.
    memory = {
        r["metric"]["instance"]: float(r["value"][1]) for r in query('process_resident_memory_bytes{job="memex"}')
    }
    print("resident memory, MiB:", {instance: round(rss / 2**20) for instance, rss in memory.items()})


def test_an_instance_killed_costs_no_request(stack: Stack) -> None:
    failures = []
    with stack.client() as api:
        for n in range(40):
            if n == 10:
                stack.apis[0].process.kill()
                stack.apis[0].process.wait()
            answer = api.get("/api/kbs")
            if answer.status_code != 200:
                failures.append((n, answer.status_code, answer.text[:200]))
    assert failures == []
    assert "upstream" in stack.nginx.log() or "connect() failed" in stack.nginx.log()
