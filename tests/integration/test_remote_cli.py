"""`memex index --url` and `memex search --url` against a real `memex serve`: sync, no re-upload, removals."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DATA, clone_database, drop_database
from tests.integration.test_serve import Served, memex_env, start_server, stop_server


@pytest.fixture(scope="module")
def server(
    pg_server_url: str, template_url: str, model_cache_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    database_url = clone_database(pg_server_url)
    home = tmp_path_factory.mktemp("remote-home")
    served = start_server(env=memex_env(database_url, home / "data", model_cache_dir), log=home / "serve.log")
    try:
        yield served
    finally:
        stop_server(served)
        drop_database(pg_server_url, database_url)


def memex(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "memex", *args], capture_output=True, text=True, env=env, timeout=300)


def summary_of(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def counts(summary: dict[str, Any]) -> dict[str, int]:
    return {k: summary[k] for k in ("added", "updated", "unchanged", "renamed", "removed")}


@pytest.fixture
def env(server: Served, tmp_path: Path) -> dict[str, str]:
    # No database here: the CLI must work through the server alone.
    return {k: v for k, v in os.environ.items() if not k.startswith("MEMEX_")} | {
        "MEMEX_DATA_DIR": str(tmp_path / "cli-data"),
        "MEMEX_URL": server.url,
        "MEMEX_API_KEY": server.key,
        "COLUMNS": "200",
    }


def test_index_url_syncs_a_folder(server: Served, env: dict[str, str], tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    (notes / "sub").mkdir(parents=True)
    for name in ("sample.md", "sample.txt", "sample.html"):
        shutil.copy(DATA / name, notes / name)
    shutil.copy(DATA / "sample.pdf", notes / "sub" / "sample.pdf")

    done = memex("index", str(notes), "--kb", "synced", "--json", env=env)
    assert done.returncode == 0, done.stderr
    assert counts(summary_of(done)) == {"added": 4, "updated": 0, "unchanged": 0, "renamed": 0, "removed": 0}
    assert summary_of(done)["chunks"] > 0

    with server.client() as api:
        kb = next(kb for kb in api.get("/api/kbs").json() if kb["name"] == "synced")
        before = api.get(f"/api/kbs/{kb['id']}/documents").json()["documents"]
    assert sorted(d["name"] for d in before) == [
        "notes/sample.html",
        "notes/sample.md",
        "notes/sample.txt",
        "notes/sub/sample.pdf",
    ]
    assert {d["status"] for d in before} == {"indexed"}

    # Nothing changed: nothing is uploaded, nothing re-indexed.
    done = memex("index", str(notes), "--kb", "synced", "--json", env=env)
    assert done.returncode == 0, done.stderr
    assert counts(summary_of(done)) == {"added": 0, "updated": 0, "unchanged": 4, "renamed": 0, "removed": 0}
    with server.client() as api:
        assert api.get(f"/api/kbs/{kb['id']}/documents").json()["documents"] == before

    # A file deleted, one moved, one changed, one corrupt: flags instead of the environment this time.
    (notes / "sample.txt").unlink()
    (notes / "sample.html").rename(notes / "sub" / "moved.html")
    (notes / "sample.md").write_text("# Changed\n\nThe capybara is the largest rodent.\n")
    shutil.copy(DATA / "corrupt.pdf", notes / "corrupt.pdf")
    flags = {k: v for k, v in env.items() if k not in ("MEMEX_URL", "MEMEX_API_KEY")}
    done = memex(
        "index", str(notes), "--kb", "synced", "--json", "--url", server.url, "--api-key", server.key, env=flags
    )
    assert done.returncode == 2, done.stderr
    summary = summary_of(done)
    assert counts(summary) == {"added": 0, "updated": 1, "unchanged": 1, "renamed": 1, "removed": 1}
    assert summary["failed"] == [
        {"path": "notes/corrupt.pdf", "reason": "corrupt PDF: not a valid PDF structure (damaged or truncated file)"}
    ]
    with server.client() as api:
        after = {d["name"]: d for d in api.get(f"/api/kbs/{kb['id']}/documents").json()["documents"]}
    assert set(after) == {"notes/corrupt.pdf", "notes/sample.md", "notes/sub/moved.html", "notes/sub/sample.pdf"}
    moved = next(d for d in before if d["name"] == "notes/sample.html")
    assert after["notes/sub/moved.html"]["id"] == moved["id"]  # renamed in place, not uploaded again

    done = memex("search", "capybara rodent", "--kb", "synced", "--json", env=env)
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)["results"]
    assert results[0]["path"] == "notes/sample.md"
    done = memex("search", "capybara rodent", env=env)
    assert done.returncode == 0 and "notes/sample.md" in done.stdout


def test_a_wrong_key_is_a_fatal_error(env: dict[str, str], tmp_path: Path) -> None:
    done = memex("search", "anything", env=env | {"MEMEX_API_KEY": "mx_wrong"})
    assert done.returncode == 1
    assert "check MEMEX_API_KEY or --api-key" in " ".join(done.stderr.split())
