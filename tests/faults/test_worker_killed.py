"""`memex worker` killed with SIGKILL in the middle of ingesting 200 uploads, then started again."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.faults.processes import (
    embedded_env,
    embedded_url,
    kill_hard,
    no_memex_postgres_left,
    short_data_dir,
    start_worker,
    stop,
)
from tests.integration.test_serve import start_server, stop_server, wait_for

FILES = 200


def document(n: int) -> bytes:
    words = " ".join(f"word{(n * 7 + i) % 97}" for i in range(60))
    return f"# Note {n}\n\nThe fault test document number {n} mentions {words}.\n".encode()


def statuses(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        return dict(conn.execute("SELECT status, count(*) FROM documents GROUP BY status").fetchall())


def jobs(url: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT task_name, status::text, attempts, count(*) FROM procrastinate_jobs GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
        ).fetchall()


@pytest.fixture
def data_dir() -> Iterator[Path]:
    folder = short_data_dir()
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_a_killed_worker_loses_no_document_and_duplicates_no_chunk(
    data_dir: Path, model_cache_dir: Path, tmp_path: Path
) -> None:
    env = embedded_env(data_dir, model_cache_dir)
    served = start_server(env=env, log=tmp_path / "serve.log", args=("--no-worker",))
    worker = None
    try:
        with served.client() as api:
            personal = next(kb for kb in api.get("/api/kbs").json() if kb["is_personal"])
            accepted = []
            for start in range(0, FILES, 20):
                files = [("files", (f"note-{n}.md", document(n))) for n in range(start, start + 20)]
                response = api.post(f"/api/kbs/{personal['id']}/documents", files=files)
                assert response.status_code == 202, response.text
                accepted += [d["id"] for d in response.json()["documents"]]
        assert len(set(accepted)) == FILES
        url = embedded_url(data_dir)

        worker = start_worker(env, tmp_path / "worker.log")
        # Killed once some documents are in and others are still being worked on.
        wait_for(lambda: statuses(url).get("indexed", 0) >= 10, timeout=300, what="the first documents indexed")
        kill_hard(worker)
        left = statuses(url)
        assert left.get("indexed", 0) < FILES, "the worker finished before it was killed: nothing was tested"

        worker = start_worker(env, tmp_path / "worker.log")
        # Jobs of the dead worker are run again once its heartbeat is STALLED_AFTER_SECONDS old (by `recover`,
        # every two minutes), so this can take a few minutes.
        try:
            wait_for(lambda: statuses(url) == {"indexed": FILES}, timeout=480, what="every document to be indexed")
        except AssertionError as exc:
            raise AssertionError(f"{exc}: documents {statuses(url)}, jobs {jobs(url)}") from None

        with psycopg.connect(url) as conn:
            duplicated = conn.execute(
                "SELECT document_id, ordinal FROM chunks GROUP BY document_id, ordinal HAVING count(*) > 1"
            ).fetchall()
            assert duplicated == []
            mismatched = conn.execute(
                "SELECT d.id FROM documents d LEFT JOIN chunks c ON c.document_id = d.id "
                "GROUP BY d.id, d.chunk_count HAVING count(c.id) <> d.chunk_count OR count(c.id) = 0"
            ).fetchall()
            assert mismatched == []
            running = conn.execute(
                "SELECT count(*) FROM procrastinate_jobs WHERE task_name LIKE '%ingest%' AND status IN ('todo', 'doing')"
            ).fetchone()
            assert running == (0,)
        assert stop(worker) == 0
    finally:
        if worker is not None and worker.poll() is None:
            worker.kill()
            worker.wait()
        stop_server(served)
    # The killed worker never said goodbye to the embedded Postgres; it stops all the same.
    no_memex_postgres_left(data_dir)
