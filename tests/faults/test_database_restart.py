"""PostgreSQL stopped and started again under load: 503s with a clear detail meanwhile, then recovery."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import httpx

from tests.deploy.parts import start_postgres, stop_postgres
from tests.faults.processes import start_database, stop_database
from tests.integration.test_serve import Served, memex_env, start_server, stop_server, wait_for

UNAVAILABLE = "the database is unavailable: try again in a few seconds"


class Load:
    """Searches sent one after another from a thread; what each got back is kept."""

    def __init__(self, served: Served) -> None:
        self.served = served
        self.outcomes: Counter[str] = Counter()
        self.details: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        with self.served.client() as client:
            while not self._stop.is_set():
                try:
                    response = client.get("/api/search", params={"q": "heron"}, timeout=30)
                except httpx.HTTPError as exc:
                    self.outcomes[type(exc).__name__] += 1
                    continue
                self.outcomes[str(response.status_code)] += 1
                if response.status_code != 200:
                    self.details.add(response.json()["detail"])

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


def test_a_database_restart_answers_503_meanwhile_and_needs_no_memex_restart(
    tmp_path: Path, model_cache_dir: Path
) -> None:
    folder = tmp_path / "postgres"
    url = start_postgres(folder)
    env = memex_env(url, tmp_path / "data", model_cache_dir, MEMEX_RATE_LIMIT_SEARCH="0")
    served = start_server(env=env, log=tmp_path / "serve.log")
    try:
        with served.client() as api, Load(served) as load:
            kb_id = next(kb for kb in api.get("/api/kbs").json() if kb["is_personal"])["id"]
            wait_for(lambda: load.outcomes["200"] >= 5, timeout=60, what="searches to succeed")

            stop_database(folder)
            wait_for(lambda: load.outcomes["503"] >= 3, timeout=60, what="searches to get 503")
            search = api.get("/api/search", params={"q": "heron"})
            assert (search.status_code, search.json()) == (503, {"detail": UNAVAILABLE})
            assert search.headers["Retry-After"] == "5"
            upload = api.post(f"/api/kbs/{kb_id}/documents", files=[("files", ("heron.md", b"# Herons\n\nwade"))])
            assert (upload.status_code, upload.json()) == (503, {"detail": UNAVAILABLE})
            ready = httpx.get(f"{served.url}/api/health/ready", timeout=30)
            assert ready.status_code == 503
            assert ready.json()["components"]["database"]["ok"] is False
            cli = subprocess.run(
                [sys.executable, "-m", "memex", "search", "heron"], env=env, capture_output=True, text=True, timeout=120
            )
            assert cli.returncode == 1
            assert "cannot reach the database" in cli.stderr and "Traceback" not in cli.stderr

            start_database(folder, url)
            wait_for(
                lambda: httpx.get(f"{served.url}/api/health/ready", timeout=30).status_code == 200,
                timeout=60,
                what="readiness to come back",
            )
            served_after = load.outcomes["200"]
            wait_for(lambda: load.outcomes["200"] > served_after + 5, timeout=60, what="searches to succeed again")

            # The in-process worker came back too: a new upload is indexed.
            upload = api.post(f"/api/kbs/{kb_id}/documents", files=[("files", ("heron.md", b"# Herons\n\nwade"))])
            assert upload.status_code == 202, upload.text
            doc_id = upload.json()["documents"][0]["id"]
            wait_for(
                lambda: api.get(f"/api/documents/{doc_id}").json()["status"] == "indexed",
                timeout=180,
                what="an upload after the restart to be indexed",
            )
        # Never a 500, a hang or a dropped connection: only answers, and the outage's are 503 with the detail.
        assert set(load.outcomes) == {"200", "503"}, load.outcomes
        assert load.details == {UNAVAILABLE}
    finally:
        stop_server(served)
        stop_postgres(folder)
