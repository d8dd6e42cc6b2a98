"""`memex search` with a `memex serve` running here: it asks the server (nothing heavy imported, same results),
and searches in-process when the server is gone, the key is missing, or its file cannot be trusted."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from memex.cli import local_server
from tests.conftest import DATA, clone_database, drop_database, make_settings
from tests.integration.test_serve import Served, free_port, memex_env, start_server, stop_server, wait_for

# Modules only a search in this process imports: their absence shows the answer came from the server.
IN_PROCESS = ("memex.runtime", "sqlalchemy", "onnxruntime", "pgserver")
# Runs the CLI and, on the way out, says which of those it imported.
PROBE = (
    "import atexit, sys\n"
    f"heavy = {IN_PROCESS!r}\n"
    "atexit.register(lambda: sys.stderr.write('\\nIMPORTED:' + ','.join(m for m in heavy if m in sys.modules) + '\\n'))\n"
    "from memex.cli.main import main\n"
    "main()\n"
)


def memex(*args: str, env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, env=env | {"COLUMNS": "200"}, timeout=300
    )
    imported = done.stderr.rsplit("IMPORTED:", 1)[-1].strip()
    return done, [m for m in imported.split(",") if m]


def titles(done: subprocess.CompletedProcess[str]) -> list[tuple[str, str]]:
    assert done.returncode == 0, done.stderr
    return [(r["kb_name"], r["path"]) for r in json.loads(done.stdout)["results"]]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("local-server")


@pytest.fixture(scope="module")
def database(pg_server_url: str, template_url: str) -> Iterator[str]:
    url = clone_database(pg_server_url)
    yield url
    drop_database(pg_server_url, url)


@pytest.fixture(scope="module")
def env(database: str, home: Path, model_cache_dir: Path) -> dict[str, str]:
    env = memex_env(database, home / "data", model_cache_dir)
    done = subprocess.run(
        [sys.executable, "-m", "memex", "index", str(DATA / "sample.md"), "--kb", "notes"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return env


@pytest.fixture(scope="module")
def server(env: dict[str, str], home: Path) -> Iterator[Served]:
    served = start_server(env=env, log=home / "serve.log", args=("--no-worker",))
    yield served
    stop_server(served)


def test_serve_leaves_its_address_for_this_user_only(server: Served, home: Path) -> None:
    marker = home / "data" / local_server.MARKER
    assert marker.stat().st_mode & 0o777 == 0o600
    body = json.loads(marker.read_text())
    assert body["url"] == server.url
    assert body["pid"] == server.process.pid
    assert body["auth"] is True
    assert len(body["database"]) == 64  # a hash of the database URL, never the URL (it may hold a password)
    assert "secret" not in marker.read_text().lower()


def test_search_asks_the_local_server_with_the_api_key(server: Served, env: dict[str, str]) -> None:
    here, imported_here = memex("search", "key rotation", "--json", env=env)
    asked, imported = memex("search", "key rotation", "--json", env=env | {"MEMEX_API_KEY": server.key})
    assert imported == [], "the search through the server imported the in-process search"
    assert "memex.runtime" in imported_here, "without a key for the server, the search runs in-process"
    assert titles(asked) == titles(here)
    assert titles(asked) and titles(asked)[0][0] == "notes"


def test_search_through_the_server_names_the_kb_and_resolves_kb_names(server: Served, env: dict[str, str]) -> None:
    keyed = env | {"MEMEX_API_KEY": server.key}
    done, imported = memex("search", "key rotation", "--kb", "notes", env=keyed)
    assert imported == []
    assert done.returncode == 0, done.stderr
    assert "in notes" in done.stdout
    missing, _ = memex("search", "key rotation", "--kb", "nowhere", env=keyed)
    assert missing.returncode == 1
    assert "no knowledge base named 'nowhere'" in missing.stderr


def test_a_wrong_key_falls_back_to_searching_here(server: Served, env: dict[str, str]) -> None:
    done, imported = memex("search", "key rotation", "--json", env=env | {"MEMEX_API_KEY": "mx_wrong_key"})
    assert "memex.runtime" in imported
    assert titles(done)


def test_an_untrusted_or_stale_marker_is_ignored(
    env: dict[str, str], tmp_path: Path, database: str, model_cache_dir: Path
) -> None:
    settings = make_settings(database, tmp_path, model_cache_dir)
    marker = tmp_path / local_server.MARKER
    nothing_there = f"http://127.0.0.1:{free_port()}"
    local_server.write_marker(settings, url=nothing_there)
    assert local_server.find(settings) == local_server.LocalServer(url=nothing_there, auth=True)

    # Nothing listens there: the search runs here, and answers.
    done, imported = memex("search", "key rotation", "--json", env=env | {"MEMEX_DATA_DIR": str(tmp_path)})
    assert "memex.runtime" in imported
    assert titles(done)

    marker.chmod(0o622)  # others may write it: it could point anywhere
    assert local_server.find(settings) is None
    marker.chmod(0o600)
    other = make_settings(database + "_other", tmp_path, model_cache_dir)
    assert local_server.find(other) is None  # a server of another database
    body = json.loads(marker.read_text())
    for changed in ({"url": "http://192.0.2.1:8420"}, {"pid": 2**22 + 1}, {"auth": "no"}):
        marker.write_text(json.dumps(body | changed))
        assert local_server.find(settings) is None, changed
    marker.unlink()
    marker.symlink_to(tmp_path / "elsewhere.json")
    (tmp_path / "elsewhere.json").write_text(json.dumps(body))
    assert local_server.find(settings) is None


def test_with_authentication_off_no_key_is_needed_and_the_marker_goes_with_the_server(
    env: dict[str, str], tmp_path: Path
) -> None:
    off = env | {"MEMEX_AUTH": "false", "MEMEX_DATA_DIR": str(tmp_path / "data")}
    port = free_port()
    with (tmp_path / "serve.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "memex", "serve", "--port", str(port), "--no-worker"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=off,
        )
    marker = tmp_path / "data" / local_server.MARKER
    try:

        def ready() -> bool:
            assert process.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                return httpx.get(f"http://127.0.0.1:{port}/api/health/ready", timeout=10).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(ready, timeout=180, what="memex serve to be ready")
        wait_for(marker.exists, timeout=10, what="the server's marker")
        assert json.loads(marker.read_text())["auth"] is False
        done, imported = memex("search", "key rotation", "--json", env=off)
        assert imported == []
        assert titles(done) and titles(done)[0][0] == "notes"
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    assert not marker.exists()
    assert not any(p.name.startswith(f".{local_server.MARKER}") for p in (tmp_path / "data").iterdir())
