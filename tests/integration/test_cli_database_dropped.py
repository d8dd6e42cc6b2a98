"""The CLI when its database connection drops mid-command, or when MEMEX_DATABASE_URL is not PostgreSQL:
exit 1 with a sentence saying so, never a traceback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import DATA
from tests.faults.dropped import dropped_in_thread
from tests.integration.test_cli import env, memex

__all__ = ["env"]  # the fixture

UNAVAILABLE = "the database is unavailable: try again in a few seconds"
QUESTION = "How are API keys rotated?"


@pytest.fixture
def indexed(env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    notes = tmp_path / "notes"
    notes.mkdir()
    shutil.copy(DATA / "sample.md", notes / "sample.md")
    assert memex("index", str(notes), env=env).returncode == 0
    return env


def test_chat_whose_connection_drops_before_answering_says_so(indexed: dict[str, str], database_url: str) -> None:
    # --kb is resolved before the question is asked, outside the answer's stream.
    with dropped_in_thread(database_url, "LOCK TABLE knowledge_bases IN ACCESS EXCLUSIVE MODE") as dropped:
        done = memex("chat", QUESTION, "--kb", "default", env=indexed)
    assert dropped.statements
    assert done.returncode == 1
    assert "the database is unavailable (terminating connection due to administrator command)" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("json_out", [False, True])
def test_chat_whose_connection_drops_while_saving_says_so(
    json_out: bool, indexed: dict[str, str], database_url: str
) -> None:
    with dropped_in_thread(database_url, "LOCK TABLE messages IN ACCESS EXCLUSIVE MODE") as dropped:
        done = memex("chat", QUESTION, *(["--json"] if json_out else []), env=indexed)
    assert dropped.statements and dropped.statements[0].startswith("INSERT INTO messages")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    if json_out:
        assert json.loads(done.stdout)["error"] == UNAVAILABLE
    else:
        assert UNAVAILABLE in done.stdout and "internal error" not in done.stdout


def test_a_command_whose_connection_drops_mid_transaction_says_so(indexed: dict[str, str], database_url: str) -> None:
    with dropped_in_thread(database_url, "LOCK TABLE chunks IN ACCESS EXCLUSIVE MODE") as dropped:
        done = memex("search", "key rotation", env=indexed)
    assert dropped.statements
    assert done.returncode == 1
    assert "the database is unavailable (terminating connection due to administrator command)" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("mysql://memex:hunter2@db.example.com/memex", "this is a mysql:// URL"),
        ("sqlite:///memex.db", "this is a sqlite:// URL"),
        ("db.example.com:5432/memex", "this is not a URL"),
    ],
)
def test_a_database_url_that_is_not_postgres_is_refused_clearly(
    url: str, said: str, env: dict[str, str], tmp_path: Path
) -> None:
    for command in (["search", "heron"], ["serve"]):
        done = memex(*command, env=env | {"MEMEX_DATABASE_URL": url})
        assert done.returncode == 1
        message = " ".join(done.stderr.split())
        assert (
            "MEMEX_DATABASE_URL is not valid: the database URL must be a PostgreSQL one" in message and said in message
        )
        assert "Traceback" not in done.stderr and "hunter2" not in done.stderr
