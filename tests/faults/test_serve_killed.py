"""`memex serve` killed with SIGKILL in the middle of uploads: no partial document, no orphan blob."""

from __future__ import annotations

import hashlib
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.faults.processes import embedded_env, embedded_url, kill_hard, no_memex_postgres_left, short_data_dir
from tests.integration.test_serve import Served, start_server, stop_server, wait_for

FILE_BYTES = 20_000


def content(n: int) -> bytes:
    line = f"Upload {n} keeps a record of the fault test and of nothing else. ".encode()
    return (b"# Upload %d\n\n" % n) + line * (FILE_BYTES // len(line))


@pytest.fixture
def data_dir() -> Iterator[Path]:
    folder = short_data_dir()
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def half_sent_upload(served: Served, kb_id: str, name: str) -> socket.socket:
    """An upload whose body stops halfway: the server is waiting for the rest when it dies."""
    boundary = "faultboundary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
        "Content-Type: text/markdown\r\n\r\n"
    ).encode() + content(9999)
    body += f"\r\n--{boundary}--\r\n".encode()
    head = (
        f"POST /api/kbs/{kb_id}/documents HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {served.key}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    conn = socket.create_connection(("127.0.0.1", served.port), timeout=30)
    conn.sendall(head + body[: len(body) // 2])
    return conn


def test_a_killed_server_leaves_no_partial_document_and_no_orphan_blob(
    data_dir: Path, model_cache_dir: Path, tmp_path: Path
) -> None:
    env = embedded_env(data_dir, model_cache_dir, MEMEX_RATE_LIMIT_UPLOAD="100/second")
    served = start_server(env=env, log=tmp_path / "serve.log")
    acknowledged: list[str] = []
    stop_uploading = threading.Event()
    with served.client() as api:
        kb_id = next(kb for kb in api.get("/api/kbs").json() if kb["is_personal"])["id"]

    def upload_until_killed() -> None:
        with served.client() as client:
            n = 0
            while not stop_uploading.is_set():
                name = f"upload-{n}.md"
                try:
                    response = client.post(f"/api/kbs/{kb_id}/documents", files=[("files", (name, content(n)))])
                except httpx.TransportError:
                    return  # the server died under this request
                assert response.status_code == 202, response.text
                acknowledged.append(name)
                n += 1

    uploader = threading.Thread(target=upload_until_killed)
    uploader.start()
    try:
        wait_for(lambda: len(acknowledged) >= 15, timeout=120, what="some uploads to be accepted")
        partial = half_sent_upload(served, kb_id, "half-sent.md")
        kill_hard(served.process)
    finally:
        stop_uploading.set()
        uploader.join(timeout=60)
    partial.close()
    # Nobody is left holding the embedded Postgres that the killed server started: it is stopped.
    no_memex_postgres_left(data_dir)

    again = start_server(env=env, log=tmp_path / "serve-again.log")
    try:
        with psycopg.connect(embedded_url(data_dir)) as conn:
            documents = dict(conn.execute("SELECT source_path, sha256 FROM documents").fetchall())
            assert set(acknowledged) <= set(documents), "an acknowledged upload was lost"
            assert "half-sent.md" not in documents
            # Whatever was stored is whole: each document's bytes are exactly what was sent.
            for name, sha in documents.items():
                n = int(name.removeprefix("upload-").removesuffix(".md"))
                assert sha == hashlib.sha256(content(n)).hexdigest()
            orphans = conn.execute(
                "SELECT count(*) FROM blobs b WHERE NOT EXISTS (SELECT 1 FROM documents d WHERE d.sha256 = b.sha256)"
            ).fetchone()
            assert orphans == (0,)
            sizes = conn.execute(
                "SELECT count(*) FROM documents d JOIN blobs b USING (sha256) WHERE b.size <> d.size "
                "OR length(b.data) <> d.size"
            ).fetchone()
            assert sizes == (0,)
            # And each is indexed, or still has a job that will index it.
            stuck = conn.execute(
                "SELECT d.source_path FROM documents d WHERE d.status <> 'indexed' AND NOT EXISTS ("
                "SELECT 1 FROM procrastinate_jobs j WHERE j.args ->> 'document_id' = d.id::text "
                "AND j.status IN ('todo', 'doing'))"
            ).fetchall()
            assert stuck == []
    finally:
        stop_server(again)
    no_memex_postgres_left(data_dir)
