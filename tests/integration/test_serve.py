"""A real `memex serve` process: probes, first-start admin, in-process worker, watched folder, limits, shutdown."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import DATA, clone_database, drop_database

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "serve test password"


@dataclass
class Served:
    url: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    key: str = ""

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.key}"}, timeout=30)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def memex_env(database_url: str, data_dir: Path, model_cache_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMEX_")}
    return env | {
        "MEMEX_DATABASE_URL": database_url,
        "MEMEX_DATA_DIR": str(data_dir),
        "MEMEX_MODEL_CACHE_DIR": str(model_cache_dir),
        "MEMEX_ADMIN_EMAIL": ADMIN_EMAIL,
        "MEMEX_ADMIN_PASSWORD": ADMIN_PASSWORD,
        **extra,
    }


def wait_for(check: Callable[[], Any], *, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def start_server(*, env: dict[str, str], log: Path, args: tuple[str, ...] = ()) -> Served:
    """Start `memex serve` on a free port, wait until it is ready, and give it an API key of the first admin."""
    port = free_port()
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "memex", "serve", "--port", str(port), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    served = Served(url=f"http://127.0.0.1:{port}", port=port, process=process, log=log)

    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"memex serve exited with {process.returncode}:\n{served.output()}")
        try:
            return httpx.get(f"{served.url}/api/health/ready", timeout=10).status_code == 200
        except httpx.TransportError:
            return False

    wait_for(ready, timeout=180, what="memex serve to be ready")
    with httpx.Client(base_url=served.url, timeout=30) as browser:
        login = browser.post("/api/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
        assert login.status_code == 200, login.text
        created = browser.post(
            "/api/keys",
            json={"name": "tests", "scopes": ["read", "write"]},
            headers={"X-CSRF-Token": login.json()["csrf_token"]},
        )
        assert created.status_code == 201, created.text
    served.key = created.json()["key"]
    return served


def stop_server(served: Served) -> int:
    if served.process.poll() is None:
        served.process.send_signal(signal.SIGTERM)
    try:
        return served.process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        served.process.kill()
        served.process.wait()
        raise


@pytest.fixture(scope="module")
def watched(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("serve") / "watched"
    folder.mkdir()
    (folder / "first.md").write_text("# First\n\nThe quokka is a small marsupial that smiles.\n")
    return folder


@pytest.fixture(scope="module")
def server(
    pg_server_url: str,
    template_url: str,
    model_cache_dir: Path,
    watched: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Served]:
    database_url = clone_database(pg_server_url)
    home = tmp_path_factory.mktemp("serve-home")
    served = start_server(
        env=memex_env(database_url, home / "data", model_cache_dir),
        log=home / "serve.log",
        args=("--index", str(watched)),
    )
    try:
        yield served
    finally:
        stop_server(served)
        drop_database(pg_server_url, database_url)


def test_health_and_readiness(server: Served) -> None:
    assert httpx.get(f"{server.url}/api/health").json() == {"status": "ok"}
    ready = httpx.get(f"{server.url}/api/health/ready", timeout=30)
    assert ready.status_code == 200
    assert all(c["ok"] for c in ready.json()["components"].values())


def test_first_start_says_how_to_log_in(server: Served) -> None:
    output = server.output()
    assert f"Created the admin account {ADMIN_EMAIL}" in output
    assert f"Memex is serving on http://127.0.0.1:{server.port}/" in output


def test_upload_is_indexed_by_the_in_process_worker(server: Served) -> None:
    with server.client() as api:
        personal = next(kb for kb in api.get("/api/kbs").json() if kb["is_personal"])
        files = [("files", ("sample.md", (DATA / "sample.md").read_bytes()))]
        accepted = api.post(f"/api/kbs/{personal['id']}/documents", files=files)
        assert accepted.status_code == 202, accepted.text
        doc_id = accepted.json()["documents"][0]["id"]

        def indexed() -> bool:
            doc = api.get(f"/api/documents/{doc_id}").json()
            assert doc["status"] != "failed", doc["error"]
            return bool(doc["status"] == "indexed")

        wait_for(indexed, timeout=120, what="the upload to be indexed")


def test_watched_folder_is_indexed_and_kept_in_step(server: Served, watched: Path) -> None:
    with server.client() as api:

        def found(word: str) -> Callable[[], bool]:
            def check() -> bool:
                results = api.get("/api/search", params={"q": word, "mode": "keyword"}).json()["results"]
                return any(word in r["text"] for r in results)

            return check

        wait_for(found("quokka"), timeout=120, what="the watched folder to be indexed")
        (watched / "second.md").write_text("# Second\n\nA pangolin rolls into a ball when scared.\n")
        wait_for(found("pangolin"), timeout=60, what="a new file in the watched folder to be indexed")


def test_over_long_query_is_refused_and_the_server_goes_on(server: Served) -> None:
    # httpx will not send a 100 KB URL, so speak HTTP/1.1 on a socket.
    request = (
        f"GET /api/search?q={'a' * 100_000} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {server.key}\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as conn:
        conn.sendall(request.encode())
        response = b""
        while chunk := conn.recv(65536):
            response += chunk
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == b"400", head
    assert json.loads(body)["detail"] == (
        "the query is 100000 characters long; the limit is 1000 (MEMEX_MAX_QUERY_CHARS)"
    )
    assert httpx.get(f"{server.url}/api/health").status_code == 200
    with server.client() as api:
        assert api.get("/api/search", params={"q": "quokka"}).status_code == 200


def test_sigterm_stops_gracefully(server: Served) -> None:
    assert stop_server(server) == 0
    assert "Traceback" not in server.output()


def test_refuses_to_serve_without_auth_on_a_public_address(tmp_path: Path, model_cache_dir: Path) -> None:
    env = memex_env("postgresql://nowhere.invalid/memex", tmp_path, model_cache_dir, MEMEX_AUTH="false")
    done = subprocess.run(
        [sys.executable, "-m", "memex", "serve", "--host", "0.0.0.0"], env=env, capture_output=True, timeout=120
    )
    assert done.returncode == 1
    assert "MEMEX_AUTH=false is only allowed when the server listens on a loopback address" in " ".join(
        done.stderr.decode().split()
    )
