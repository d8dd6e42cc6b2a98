"""The `memex` command as a user runs it: exit codes, JSON output, help, and fatal errors."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from memex.settings import Settings
from tests.conftest import DATA


def memex(*args: str, env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "memex", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300
    )


@pytest.fixture
def env(database_url: str, tmp_path: Path, model_cache_dir: Path) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("MEMEX_")},
        "MEMEX_DATABASE_URL": database_url,
        "MEMEX_DATA_DIR": str(tmp_path / "data"),
        "MEMEX_MODEL_CACHE_DIR": str(model_cache_dir),
        "COLUMNS": "200",
    }


def test_index_json_exit_codes_and_search(env: dict[str, str], tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    for name in ("sample.md", "sample.txt"):
        shutil.copy(DATA / name, notes / name)

    done = memex("index", str(notes), "--json", env=env)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert {k: summary[k] for k in ("added", "updated", "unchanged", "removed", "failed")} == {
        "added": 2,
        "updated": 0,
        "unchanged": 0,
        "removed": 0,
        "failed": [],
    }

    shutil.copy(DATA / "corrupt.pdf", notes / "corrupt.pdf")
    done = memex("index", str(notes), "--json", env=env)
    assert done.returncode == 2
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["unchanged"] == 2
    assert [f["path"] for f in summary["failed"]] == [str(notes / "corrupt.pdf")]

    done = memex("search", "key rotation", "--json", "--limit", "3", env=env)
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)["results"]
    assert 0 < len(results) <= 3
    assert set(results[0]) >= {"document_id", "kb", "title", "path", "heading", "location", "text", "snippet", "score"}

    done = memex("search", "key rotation", env=env)
    assert done.returncode == 0 and "sample" in done.stdout


def test_index_into_a_named_kb_created_on_first_use(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# Alpha\n\nThe alpaca grazes quietly.\n")
    assert memex("index", str(tmp_path / "a.md"), "--kb", "work", env=env).returncode == 0
    done = memex("search", "alpaca", "--kb", "work", "--json", env=env)
    assert [Path(r["path"]).name for r in json.loads(done.stdout)["results"]] == ["a.md"]
    done = memex("search", "alpaca", "--kb", "nope", env=env)
    assert done.returncode == 1 and "no knowledge base named 'nope'" in done.stderr


def test_fatal_errors_exit_1_with_a_message(env: dict[str, str], tmp_path: Path) -> None:
    done = memex("index", str(tmp_path / "missing"), env=env)
    assert done.returncode == 1 and "path does not exist" in done.stderr

    unreachable = {**env, "MEMEX_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}
    done = memex("search", "anything", env=unreachable)
    assert done.returncode == 1 and "cannot reach the database" in done.stderr
    assert "Traceback" not in done.stderr


def test_model_mismatch_names_reembed(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# A\n\ntext\n")
    assert memex("index", str(tmp_path / "a.md"), env=env).returncode == 0
    other = {
        **env,
        "MEMEX_EMBEDDING_PROVIDER": "openai",
        "MEMEX_EMBEDDING_BASE_URL": "http://127.0.0.1:9/v1",
        "MEMEX_EMBEDDING_MODEL": "other-model",
        "MEMEX_EMBEDDING_DIMENSION": "128",
    }
    done = memex("search", "text", env=other)
    message = " ".join(done.stderr.split())
    assert done.returncode == 1 and "memex reembed" in message and "all-MiniLM-L6-v2 (384 dimensions)" in message


def test_help_documents_exit_statuses(env: dict[str, str]) -> None:
    done = memex("index", "--help", env=env)
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    assert (
        "0 when every file was indexed" in text and "2 when some files failed" in text and "1 on a fatal error" in text
    )


def test_every_setting_has_a_description_and_is_in_the_readme() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    for name, field in Settings.model_fields.items():
        assert field.description, f"MEMEX_{name.upper()} has no description"
        assert f"MEMEX_{name.upper()}" in readme, f"MEMEX_{name.upper()} is not documented in README.md"


def test_reembed_says_what_another_model_needs(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# A\n\nThe heron waits by the river.\n")
    assert memex("index", str(tmp_path / "a.md"), env=env).returncode == 0
    done = memex("reembed", "--model", "nomic-embed-text", "--dimension", "768", env=env)
    assert done.returncode == 1 and "OpenAI-compatible embeddings server" in " ".join(done.stderr.split())
    done = memex("reembed", env=env)
    assert done.returncode == 0 and "nothing to do" in done.stderr
    done = memex("reembed", "--rollback", env=env)
    assert done.returncode == 1 and "no previous vectors" in done.stderr
    done = memex(
        "search", "heron", env={**env, "MEMEX_EMBEDDING_MODEL": "bge-large-en", "MEMEX_EMBEDDING_DIMENSION": "1024"}
    )
    assert done.returncode == 1 and "the local embedding provider has one model" in " ".join(done.stderr.split())
    done = memex("search", "heron", "--json", env=env)
    assert done.returncode == 0 and json.loads(done.stdout)["results"]


def test_processes_share_the_embedded_server(env: dict[str, str], tmp_path: Path) -> None:
    """No MEMEX_DATABASE_URL: several processes start, migrate and index against one embedded Postgres."""
    embedded = {k: v for k, v in env.items() if k != "MEMEX_DATABASE_URL"}
    embedded["MEMEX_DATA_DIR"] = f"/tmp/memex-emb-{os.getpid()}"  # short: the Unix socket lives inside it
    folders = []
    for i in range(2):
        folder = tmp_path / f"f{i}"
        folder.mkdir()
        (folder / f"doc{i}.md").write_text(f"# Doc {i}\n\nThe lighthouse number {i} guides ships.\n")
        folders.append(folder)
    try:
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "memex", "index", str(f), "--kb", f"kb{i}", "--json"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=embedded,
            )
            for i, f in enumerate(folders)
        ]
        outs = [p.communicate(timeout=300) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], [o[1][-1500:] for o in outs]
        assert all(json.loads(o[0].strip().splitlines()[-1])["added"] == 1 for o in outs)
        done = memex("search", "lighthouse", "--json", env=embedded)
        assert sorted(Path(r["path"]).name for r in json.loads(done.stdout)["results"]) == ["doc0.md", "doc1.md"]
        assert (Path(embedded["MEMEX_DATA_DIR"]) / "pg" / "PG_VERSION").exists()
    finally:
        shutil.rmtree(embedded["MEMEX_DATA_DIR"], ignore_errors=True)


def test_watch_reindexes_changes(env: dict[str, str], tmp_path: Path) -> None:
    import queue
    import threading
    import time

    folder = tmp_path / "watched"
    folder.mkdir()
    (folder / "a.md").write_text("# A\n\nFirst note about pelicans.\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "memex", "index", str(folder), "--watch", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines: queue.Queue[tuple[str, str]] = queue.Queue()

    def pump(name: str, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            lines.put((name, line))

    pumps = [
        threading.Thread(target=pump, args=(name, stream), daemon=True)
        for name, stream in (("out", proc.stdout), ("err", proc.stderr))
    ]
    for thread in pumps:
        thread.start()

    def next_line(kind: str, deadline: float) -> str:
        while True:
            name, line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            if name == kind or (kind == "watching" and "watching" in line):
                return line

    try:
        deadline = time.monotonic() + 120
        assert json.loads(next_line("out", deadline))["added"] == 1
        next_line("watching", deadline)
        time.sleep(1.5)  # the watcher starts just after it says so
        (folder / "b.md").write_text("# B\n\nSecond note about flamingos.\n")
        summary = json.loads(next_line("out", time.monotonic() + 60))
        assert summary["added"] == 1 and summary["unchanged"] == 1
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        for thread in pumps:
            thread.join(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    done = memex("search", "flamingos", "--json", env=env)
    assert Path(json.loads(done.stdout)["results"][0]["path"]).name == "b.md"
