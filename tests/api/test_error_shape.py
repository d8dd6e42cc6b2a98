"""Every error, from every route in the OpenAPI description, is `{"detail": <str or list>}` as JSON
(with OpenAI's `error` object beside it under /v1/)."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
from fastapi import FastAPI

from memex.accounts.models import User
from tests.factories import Factory

# The readiness probe answers 503 with its component report, as DESIGN §5 specifies.
OWN_SHAPE = {"/api/health/ready"}


def _assert_error_shape(response: httpx.Response, where: str) -> None:
    if response.status_code < 400:
        return
    assert response.headers["content-type"].startswith("application/json"), where
    body = response.json()
    if response.request.url.path.startswith("/v1/"):
        # The OpenAI-compatible routes add OpenAI's own error object, which its SDKs read, beside `detail`.
        assert isinstance(body, dict) and set(body) == {"detail", "error"}, where
        assert body["error"]["message"] == body["detail"], where
    else:
        assert isinstance(body, dict) and set(body) == {"detail"}, where
    assert isinstance(body["detail"], str | list) and body["detail"], where


def _variants(path: str) -> list[str]:
    names = re.findall(r"{(\w+)}", path)
    urls = []
    for value in ("not-an-id", str(uuid.uuid4()), "%00", "1" * 300):
        url = path
        for name in names:
            url = url.replace(f"{{{name}}}", value)
        urls.append(url)
    return urls if names else [path]


BODIES: list[dict[str, Any]] = [
    {},
    {"content": b"{not json", "headers": {"content-type": "application/json"}},
    {"json": {"name": 12, "email": None, "scopes": "all", "role": "god", "kbs": ["x"], "expires_at": "soon"}},
    {"json": ["a", "list"]},
    {"content": b"\x00\xff" * 10, "headers": {"content-type": "multipart/form-data; boundary=nope"}},
    {"params": {"q": "", "limit": "-1", "kb": "nope", "mode": "psychic", "offset": "x"}},
]


async def test_every_route_answers_errors_in_one_shape(make: Factory, app: FastAPI, admin: User) -> None:
    _, key = await make.key(admin, scopes=["read", "write", "admin"])
    clients = {"anonymous": make.client(), "admin key": make.client(key=key), "bad key": make.client(key="mx_bad")}
    checked = 0
    for path, item in app.openapi()["paths"].items():
        if path in OWN_SHAPE:
            continue
        for method in item:
            for n, url in enumerate(_variants(path)):
                for who, client in clients.items():
                    # Without valid credentials only the request's shape matters, not which id it names.
                    if who != "admin key" and n > 0:
                        continue
                    for body in BODIES if who != "bad key" else BODIES[:2]:
                        response = await client.request(method.upper(), url, **body)
                        assert response.status_code < 500, f"{who} {method.upper()} {url} {body}: {response.text[:300]}"
                        _assert_error_shape(response, f"{who} {method.upper()} {url} {body} -> {response.status_code}")
                        checked += response.status_code >= 400
    assert checked > 100


async def test_unknown_routes_and_methods_answer_in_the_same_shape(make: Factory, admin: User) -> None:
    client = make.client(session=await make.session(admin))
    for response, status in (
        (await client.get("/api/nothing-here"), 404),
        (await client.put("/api/kbs"), 405),
        (await make.client().get("/api/kbs"), 401),
    ):
        assert response.status_code == status
        _assert_error_shape(response, str(response.request.url))


async def test_nul_characters_are_refused_not_crashed_on(make: Factory, app: FastAPI, admin: User) -> None:
    """PostgreSQL text cannot hold NUL: every query parameter and JSON string carrying one gets a 4xx."""
    _, key = await make.key(admin, scopes=["read", "write", "admin"])
    client = make.client(key=key)
    kb = await make.kb(admin, name="target")
    doc = await make.document(kb, name="a.md", text="# A\n\nText.\n")
    ids = {"kb": str(kb.id), "document_id": str(doc), "id": str(admin.id), "user_id": str(admin.id)}
    nul = "a\x00b"
    crashed: list[str] = []
    for path, item in app.openapi()["paths"].items():
        url = re.sub(r"{(\w+)}", lambda m: ids.get(m.group(1), str(uuid.uuid4())), path)
        for method, op in item.items():
            if method == "delete":
                continue  # takes no text, and would remove the targets the other requests need
            # One query parameter at a time, so that another's validation does not stop the request early.
            query = [p for p in op.get("parameters", []) if p["in"] == "query"]
            required = {p["name"]: "hello" for p in query if p.get("required")}
            attempts: list[dict[str, Any]] = [{"params": required | {p["name"]: nul}} for p in query]
            attempts.append({"json": {k: nul for k in ("name", "description", "email", "password", "message", "q")}})
            for attempt in attempts:
                try:
                    response = await client.request(method.upper(), url, **attempt)
                except Exception as exc:  # the in-process transport re-raises what the app did not handle
                    crashed.append(f"{method.upper()} {path} {attempt}: {type(exc).__name__}: {str(exc)[:120]}")
                    continue
                if response.status_code >= 500:
                    crashed.append(f"{method.upper()} {path} {attempt}: {response.status_code}")
                _assert_error_shape(response, f"{method.upper()} {path}")
    assert not crashed, "\n".join(crashed)
