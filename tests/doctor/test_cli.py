"""`memex doctor` and `memex db maintain` as an operator runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def memex(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "memex", *args], capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture
def env(database_url: str, tmp_path: Path, model_cache_dir: Path) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("MEMEX_")},
        "MEMEX_DATABASE_URL": database_url,
        "MEMEX_DATA_DIR": str(tmp_path / "data"),
        "MEMEX_MODEL_CACHE_DIR": str(model_cache_dir),
        "COLUMNS": "200",
    }


def test_doctor_json_and_strict(env: dict[str, str]) -> None:
    done = memex("doctor", "--json", "--strict", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    body = json.loads(done.stdout)
    assert body["summary"]["ok"] is True and body["findings"] and body["manual"]

    exposed = {**env, "MEMEX_HOST": "0.0.0.0", "MEMEX_AUTH": "false"}
    done = memex("doctor", "--strict", env=exposed)
    assert done.returncode == 1
    assert "CRITICAL" in done.stdout and "security.auth" in done.stdout and "MANUAL" in done.stdout
    assert memex("doctor", "--json", env=exposed).returncode == 0  # without --strict it only reports


def test_db_maintain_on_a_fresh_store_only_analyzes(env: dict[str, str]) -> None:
    done = memex("db", "maintain", "--json", env=env)
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert "chunks" in body["analyzed"] and body["reindexed"] == []
    done = memex("db", "maintain", env=env)
    assert done.returncode == 0 and "ANALYZE" in done.stdout and "left as it is" in done.stdout
