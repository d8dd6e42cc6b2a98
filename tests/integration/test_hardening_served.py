"""A real `memex serve`: request bodies are bounded before authentication (a huge body costs the server no
memory, whatever its Content-Type), and a proxy on the same machine can say the client came over https."""

from __future__ import annotations

import json
import select
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import clone_database, drop_database
from tests.integration.test_serve import ADMIN_EMAIL, ADMIN_PASSWORD, Served, memex_env, start_server, stop_server

MIB = 1024 * 1024
TOO_LARGE = {"detail": "the request body is larger than the limit of 1024 KiB (MEMEX_MAX_JSON_KB)"}


@pytest.fixture(scope="module")
def served(
    pg_server_url: str, template_url: str, model_cache_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    database_url = clone_database(pg_server_url)
    home = tmp_path_factory.mktemp("hardening-served")
    # An operator who allows large uploads: that limit must not open every other route to large bodies.
    env = memex_env(database_url, home / "data", model_cache_dir, MEMEX_MAX_UPLOAD_MB="1000")
    server = start_server(env=env, log=home / "serve.log")
    try:
        yield server
    finally:
        stop_server(server)
        drop_database(pg_server_url, database_url)


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS in /proc/{pid}/status")


def _response(conn: socket.socket) -> tuple[int, dict[str, object]]:
    """The server's answer; (0, {}) if it gives none (still waiting for the rest of the body)."""
    conn.settimeout(30)
    data = b""
    while b"\r\n\r\n" not in data or not data.endswith(b"}"):
        try:
            chunk = conn.recv(65536)
        except TimeoutError:
            return 0, {}
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(body)


def _stream_chunked(served: Served, *, content_type: str, total: int) -> tuple[int, dict[str, object], int]:
    """POST a chunked body of up to `total` bytes to the login route, never finishing it, and stop sending once
    the server answers. Returns the status, the body and the server's largest RSS growth seen meanwhile."""
    head = (
        f"POST /api/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode()
    chunk = b"x" * (256 * 1024)
    frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    before = peak = rss_bytes(served.process.pid)
    with socket.create_connection(("127.0.0.1", served.port), timeout=60) as conn:
        conn.sendall(head)
        sent = 0
        while sent < total and not select.select([conn], [], [], 0)[0]:
            try:
                conn.sendall(frame)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
            if sent % (8 * MIB) == 0:
                peak = max(peak, rss_bytes(served.process.pid))
        peak = max(peak, rss_bytes(served.process.pid))
        status, body = _response(conn)
    return status, body, peak - before


@pytest.mark.parametrize("content_type", ["application/json", "multipart/form-data; boundary=x", "text/plain"])
def test_a_huge_body_before_authentication_costs_no_memory(served: Served, content_type: str) -> None:
    status, body, growth = _stream_chunked(served, content_type=content_type, total=300 * MIB)
    assert growth < 64 * MIB, f"the server grew by {growth // MIB} MiB"
    assert (status, body) == (413, TOO_LARGE)


def test_a_declared_length_over_the_limit_is_refused_before_the_body(served: Served) -> None:
    head = (
        "POST /api/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=x\r\n"
        f"Content-Length: {300 * MIB}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", served.port), timeout=60) as conn:
        conn.sendall(head.encode())
        assert _response(conn) == (413, TOO_LARGE)


def test_a_long_openai_compatible_conversation_still_fits(served: Served) -> None:
    """The largest legitimate JSON body: an OpenAI client resends the whole conversation with each question."""
    turns = [
        message
        for n in range(100)
        for message in (
            {"role": "user", "content": f"question {n}: " + "q" * 900},
            {"role": "assistant", "content": f"answer {n}: " + "a" * 4000},  # about LLM_MAX_TOKENS of text
        )
    ]
    request = {"model": "memex", "messages": [*turns, {"role": "user", "content": "What is the quokka?"}]}
    assert 400_000 < len(json.dumps(request)) < 1024 * 1024
    with served.client() as api:
        answer = api.post("/v1/chat/completions", json=request)
        assert answer.status_code == 200, answer.text


def test_a_proxy_on_the_same_machine_makes_cookies_secure(served: Served) -> None:
    with httpx.Client(base_url=served.url, timeout=60) as client:
        login = {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        forwarded = client.post("/api/auth/login", json=login, headers={"X-Forwarded-Proto": "https"})
        assert forwarded.status_code == 200
        assert all("; secure" in c.lower() for c in forwarded.headers.get_list("set-cookie"))
        plain = client.post("/api/auth/login", json=login)
        assert not any("; secure" in c.lower() for c in plain.headers.get_list("set-cookie"))
