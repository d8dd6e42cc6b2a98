"""`memex loadtest` against a real `memex serve`: counts add up, percentiles are ordered, refusals are errors."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import clone_database, drop_database
from tests.integration.test_serve import Served, memex_env, start_server, stop_server

UNLIMITED = {
    "MEMEX_RATE_LIMIT_SEARCH": "0",
    "MEMEX_RATE_LIMIT_CHAT": "0",
    "MEMEX_RATE_LIMIT_UPLOAD": "100/second",
}


@pytest.fixture(scope="module")
def served(
    pg_server_url: str, template_url: str, model_cache_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    database_url = clone_database(pg_server_url)
    home = tmp_path_factory.mktemp("loadtest")
    server = start_server(
        env=memex_env(database_url, home / "data", model_cache_dir, **UNLIMITED), log=home / "serve.log"
    )
    try:
        yield server
    finally:
        stop_server(server)
        drop_database(pg_server_url, database_url)


def loadtest(served: Served, *args: str, key: str | None = None) -> tuple[int, dict[str, Any], str]:
    done = subprocess.run(
        [sys.executable, "-m", "memex", "loadtest", served.url, "--api-key", key or served.key, "--json", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    return done.returncode, json.loads(done.stdout.splitlines()[-1]), done.stderr


def check_report(report: dict[str, Any], *, requests: int) -> None:
    assert report["requests"] == requests
    assert report["successes"] + report["errors"] == requests
    assert sum(report["requests_by_kind"].values()) == requests
    assert sum(report["errors_by_kind"].values()) == report["errors"]
    latency = report["latency_ms"]
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"]
    assert report["throughput_per_s"] > 0


def test_steady_and_mix_scenarios_report_every_request(served: Served) -> None:
    status, body, stderr = loadtest(served, "--scenario", "steady", "--scenario", "mix", "--duration", "3")
    assert status == 0, stderr
    steady, mix = body["scenarios"]
    assert (steady["scenario"], mix["scenario"]) == ("steady", "mix")
    check_report(steady, requests=30)
    check_report(mix, requests=30)
    assert steady["errors"] == mix["errors"] == 0, (steady["errors_by_kind"], mix["errors_by_kind"])
    assert mix["requests_by_kind"] == {"chat": 3, "complex_search": 9, "search": 18}


def test_ingest_uploads_into_a_knowledge_base_of_its_own(served: Served) -> None:
    status, body, stderr = loadtest(served, "--scenario", "ingest", "--duration", "4")
    assert status == 0, stderr
    (ingest,) = body["scenarios"]
    check_report(ingest, requests=4)
    assert ingest["errors"] == 0
    with served.client() as api:
        kb = next(kb for kb in api.get("/api/kbs").json() if kb["name"] == "memex-loadtest")
        documents = api.get(f"/api/kbs/{kb['id']}/documents").json()["documents"]
    assert len(documents) == 4


def test_a_refused_key_makes_every_request_an_error_and_the_exit_status_1(served: Served) -> None:
    status, body, stderr = loadtest(served, "--duration", "2", key="mx_not_a_real_key")
    (steady,) = body["scenarios"]
    assert status == 1
    assert (steady["requests"], steady["successes"], steady["errors"]) == (20, 0, 20)
    assert steady["errors_by_kind"] == {"HTTP 401 (API key refused)": 20}
    assert steady["latency_ms"] == {"p50": None, "p95": None, "p99": None, "max": None}
    assert "steady: 20 of 20 requests failed (HTTP 401 (API key refused): 20)" in " ".join(stderr.split())


def test_an_unreachable_server_is_a_clear_error(model_cache_dir: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "memex", "loadtest", "http://127.0.0.1:9", "--api-key", "k", "-s", "ingest"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "cannot reach http://127.0.0.1:9" in done.stderr
    assert "Traceback" not in done.stderr
