"""A real `memex serve` logging JSON at DEBUG through a whole scenario — logins, keys, uploads, search, chat,
errors — leaves one JSON object per line, with request ids that match the responses (and follow the upload into
its ingestion job), and not one of the passwords, keys, cookies or tokens it was given."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import clone_database, drop_database
from tests.integration.test_serve import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    Served,
    memex_env,
    start_server,
    stop_server,
    wait_for,
)

WRONG_PASSWORD = "wrong-horse-9f3c2e71"
USER_PASSWORD = "user password 5d1e07aa"
FAKE_KEY = "mx_zzzz9999_notarealkeybutsecretlooking0123"
OTHER_SCHEME = "Token hunter2-token-7c6b"
PRIVATE_QUERY = "invoice for ada.lovelace@example.org card 4111 1111 1111 1111 call +44 20 7946 0958"
# What `memex serve` prints for a person at start-up, on purpose not as a log line.
BANNER = ("Created the admin account", "Memex is serving on", "Log in at")


@pytest.fixture(scope="module")
def served(
    pg_server_url: str, template_url: str, model_cache_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    database_url = clone_database(pg_server_url)
    home = tmp_path_factory.mktemp("log-secrets")
    env = memex_env(
        database_url,
        home / "data",
        model_cache_dir,
        MEMEX_LOG_FORMAT="json",
        MEMEX_LOG_LEVEL="DEBUG",
        MEMEX_SLOW_REQUEST_MS="1",
    )
    server = start_server(env=env, log=home / "serve.log")
    try:
        yield server
    finally:
        stop_server(server)
        drop_database(pg_server_url, database_url)


def _scenario(served: Served) -> tuple[list[str], dict[str, str], str]:
    """Runs everything; returns the secrets used, the request ids seen by path, and the uploaded document's id."""
    secrets = [ADMIN_PASSWORD, WRONG_PASSWORD, USER_PASSWORD, served.key, FAKE_KEY, OTHER_SCHEME]
    ids: dict[str, str] = {}

    def seen(name: str, response: httpx.Response) -> httpx.Response:
        ids[name] = response.headers["X-Request-ID"]
        return response

    with httpx.Client(base_url=served.url, timeout=60) as browser:
        assert (
            seen(
                "bad login", browser.post("/api/auth/login", json={"email": ADMIN_EMAIL, "password": WRONG_PASSWORD})
            ).status_code
            == 401
        )
        login = seen("login", browser.post("/api/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}))
        assert login.status_code == 200
        csrf = login.json()["csrf_token"]
        secrets += [csrf, browser.cookies["memex_session"]]
        assert browser.post("/api/keys", json={"name": "no csrf", "scopes": ["read"]}).status_code == 403
        made = browser.post(
            "/api/keys", json={"name": "scenario", "scopes": ["read", "write"]}, headers={"X-CSRF-Token": csrf}
        )
        assert made.status_code == 201
        key, key_id, prefix = made.json()["key"], made.json()["id"], made.json()["prefix"]
        secrets += [key, key.removeprefix(prefix)]
        user = browser.post(
            "/api/admin/users",
            json={"email": "second@example.com", "password": USER_PASSWORD},
            headers={"X-CSRF-Token": csrf},
        )
        assert user.status_code == 201

        api = httpx.Client(base_url=served.url, headers={"Authorization": f"Bearer {key}"}, timeout=60)
        with api:
            personal = next(kb for kb in api.get("/api/kbs").json() if kb["is_personal"])
            files = {"files": ("otters.md", b"# Otters\n\nSea otters hold hands while they sleep.\n")}
            upload = seen("upload", api.post(f"/api/kbs/{personal['id']}/documents", files=files))
            assert upload.status_code == 202
            doc_id = upload.json()["documents"][0]["id"]
            wait_for(
                lambda: api.get(f"/api/documents/{doc_id}").json()["status"] == "indexed",
                timeout=120,
                what="the upload to be indexed",
            )
            searched = seen("search", api.get("/api/search", params={"q": PRIVATE_QUERY, "kb": personal["id"]}))
            assert searched.status_code == 200
            chat = api.post("/api/chat", json={"message": "What do sea otters hold?", "stream": False})
            assert chat.status_code == 200 and "otters" in chat.json()["answer"].lower(), chat.text
            given = seen("given id", api.get("/api/kbs", headers={"X-Request-ID": "proxy-req-0042"}))
            assert given.headers["X-Request-ID"] == "proxy-req-0042"
            forged = seen("forged id", api.get("/api/kbs", headers={"X-Request-ID": 'x" injected\\n{"event": 1}'}))
            assert forged.headers["X-Request-ID"] != 'x" injected\\n{"event": 1}'
            assert api.get("/api/documents/00000000-0000-0000-0000-000000000000").status_code == 404
            assert api.get("/api/search", params={"q": "x", "limit": 0}).status_code in (400, 422)
            assert (
                api.post("/api/kbs", content=b"{not json", headers={"Content-Type": "application/json"}).status_code
                == 422
            )
            # Revoked from the session: a key without all of its admin's scopes may not manage keys.
            assert browser.delete(f"/api/keys/{key_id}", headers={"X-CSRF-Token": csrf}).status_code == 204
            assert api.get("/api/kbs").status_code == 401  # the revoked key
        for header in (f"Bearer {FAKE_KEY}", OTHER_SCHEME):
            assert httpx.get(f"{served.url}/api/kbs", headers={"Authorization": header}).status_code == 401
        logout = browser.post("/api/auth/logout", headers={"X-CSRF-Token": csrf})
        assert logout.status_code == 204
    return secrets, ids, doc_id


def _records(text: str) -> list[dict[str, Any]]:
    records = []
    for line in text.splitlines():
        if not line.strip() or line.startswith(BANNER):
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"a log line that is not JSON: {line[:300]}")
    return records


def test_full_scenario_logs_json_with_request_ids_and_no_secret(served: Served) -> None:
    secrets, ids, doc_id = _scenario(served)
    assert stop_server(served) == 0
    text = served.output()
    records = _records(text)
    assert len(records) > 50

    leaked = [s for s in secrets if s and s in text]
    assert not leaked, f"secrets in the log: {leaked}"
    for private in ("ada.lovelace@example.org", "4111 1111 1111 1111", "7946 0958"):
        assert private not in text

    requests = {r["request_id"]: r for r in records if r.get("event") == "request"}
    for name, request_id in ids.items():
        assert request_id in requests, f"no access line for {name} ({request_id})"
    assert requests[ids["given id"]]["route"] == "/api/kbs"
    upload = requests[ids["upload"]]
    assert upload["status"] == 202 and upload["user"] and upload["kb"] and upload["latency_ms"] >= 0
    assert {"method", "route", "status", "latency_ms", "user", "kb", "ip", "timestamp", "level"} <= set(upload)
    assert requests[ids["bad login"]]["status"] == 401

    # The ingestion job's lines carry the id of the request that queued it.
    job_lines = [
        r for r in records if r.get("document_id") == doc_id and r.get("logger") in ("memex.jobs", "memex.ingest")
    ]
    assert {"job started", "document indexed", "job finished"} <= {r["event"] for r in job_lines}
    assert {r["request_id"] for r in job_lines} == {ids["upload"]}

    search = next(r for r in records if r.get("event") == "search" and r.get("request_id") == ids["search"])
    assert search["mode"] == "hybrid" and search["results"] >= 0 and search["latency_ms"] >= 0
    assert search["query"] == "invoice for [email] card [card] call [phone]"
    chat = next(r for r in records if r.get("event") == "chat answered")
    assert chat["question"] == "What do sea otters hold?" and chat["model"] == "extractive"

    auth_events = [r["event"] for r in records if r.get("logger") == "memex.audit"]
    for event in ("login_failed", "login", "key_created", "user_created", "document_uploaded", "key_revoked", "logout"):
        assert event in auth_events
    failed = next(r for r in records if r.get("event") == "login_failed")
    assert failed["level"] == "warning" and failed["request_id"] == ids["bad login"]
    slow = [r for r in records if r.get("event") == "slow_request"]
    assert slow and all(r["level"] == "warning" and r["threshold_ms"] == 1 for r in slow)
