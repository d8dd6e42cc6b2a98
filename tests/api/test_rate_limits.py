"""Per-user rate limits on search and chat: 429 with Retry-After and RateLimit-* headers, shared through Redis."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from memex.accounts.models import User
from memex.api.app import create_app
from memex.runtime import open_runtime
from memex.settings import Settings
from tests.conftest import make_settings
from tests.factories import PASSWORD, Factory


@pytest.fixture
def settings(database_url: str, tmp_path: Path, model_cache_dir: Path) -> Settings:
    return make_settings(
        database_url,
        tmp_path / "data",
        model_cache_dir,
        rate_limit_search="3/minute",
        rate_limit_chat="2/hour",
        # A burst window long enough that a slow upload on a busy machine cannot slip past it.
        rate_limit_upload="1/minute;2/hour",
        rate_limit_login="2/minute",
    )


async def test_a_user_past_the_search_limit_gets_429_with_when_to_retry(make: Factory, alice: User, bob: User) -> None:
    client = await make.as_user(alice)
    for remaining in (2, 1, 0):
        response = await client.get("/api/search", params={"q": "anything"})
        assert response.status_code == 200
        assert response.headers["RateLimit-Limit"] == "3" and response.headers["RateLimit-Remaining"] == str(remaining)
    refused = await client.get("/api/search", params={"q": "anything"})
    assert refused.status_code == 429
    assert refused.json()["detail"].startswith("too many searches: the limit is 3 per minute; try again in")
    assert 1 <= int(refused.headers["Retry-After"]) <= 60 and refused.headers["RateLimit-Remaining"] == "0"
    # Another user, and another bucket, count on their own.
    assert (await (await make.as_user(bob)).get("/api/search", params={"q": "anything"})).status_code == 200
    assert (await client.post("/api/chat", json={"message": "anything?", "stream": False})).status_code == 200


async def test_chat_is_limited_on_both_apis(make: Factory, alice: User) -> None:
    _, key = await make.key(alice, scopes=["read"])
    client = make.client(key=key)
    assert (await client.post("/api/chat", json={"message": "one?", "stream": False})).status_code == 200
    completion = {"model": "memex", "messages": [{"role": "user", "content": "two?"}]}
    assert (await client.post("/v1/chat/completions", json=completion)).status_code == 200
    refused = await client.post("/v1/chat/completions", json=completion)
    assert refused.status_code == 429 and refused.json()["error"]["type"] == "rate_limit_error"
    assert "too many chat questions: the limit is 2 per hour" in refused.json()["detail"]
    assert (await client.post("/api/chat", json={"message": "three?"})).status_code == 429


async def test_instances_share_their_counts_through_redis(
    make: Factory, alice: User, settings: Settings, redis_url: str
) -> None:
    shared = settings.model_copy(update={"redis_url": SecretStr(redis_url), "rate_limit_search": "4/minute"})
    apps: list[FastAPI] = []
    runtimes = []
    for _ in range(2):  # two API instances on one database and one Redis
        runtime = await open_runtime(shared)
        runtime.use_embedder(make.runtime.embedder)
        runtimes.append(runtime)
        apps.append(create_app(shared, runtime=runtime))
    try:
        session = await make.session(alice)
        statuses = []
        for n in range(6):
            client = Factory(runtime=runtimes[n % 2], app=apps[n % 2]).client(session=session)
            statuses.append((await client.get("/api/search", params={"q": "anything"})).status_code)
            await client.aclose()
        assert statuses == [200, 200, 200, 200, 429, 429]
    finally:
        for runtime in runtimes:
            await runtime.close()


async def test_an_unreachable_redis_falls_back_to_counting_per_instance(
    make: Factory, alice: User, settings: Settings
) -> None:
    update = {"redis_url": SecretStr("redis://127.0.0.1:9/0"), "rate_limit_search": "2/minute"}
    down = settings.model_copy(update=update)
    runtime = await open_runtime(down)
    runtime.use_embedder(make.runtime.embedder)
    try:
        app = create_app(down, runtime=runtime)
        client = Factory(runtime=runtime, app=app).client(session=await make.session(alice))
        statuses = [(await client.get("/api/search", params={"q": "anything"})).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        ready = await client.get("/api/health/ready")
        assert ready.status_code == 200
        redis = ready.json()["components"]["redis"]
        assert redis["ok"] is False and redis["required"] is False
        await client.aclose()
    finally:
        await runtime.close()


def test_a_malformed_limit_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="'lots' is not a rate limit: write it like 120/minute"):
        Settings(rate_limit_chat="lots")
    assert Settings(rate_limit_search="0").rate_limit_search == "0"


async def test_uploads_have_a_burst_and_a_rate_per_key(make: Factory, alice: User) -> None:
    kb = await make.personal_kb(alice)
    _, key = await make.key(alice)
    client = make.client(key=key)
    first = await client.post(f"/api/kbs/{kb.id}/documents", files={"files": ("a.md", b"# A\n")})
    assert first.status_code == 202
    burst = await client.post(f"/api/kbs/{kb.id}/documents", files={"files": ("b.md", b"# B\n")})
    assert burst.status_code == 429 and "the limit is 1 per minute" in burst.json()["detail"]
    # The same user through a session spends a budget of its own.
    session = await make.as_user(alice)
    assert (await session.post(f"/api/kbs/{kb.id}/documents", files={"files": ("c.md", b"# C\n")})).status_code == 202


async def test_logins_are_limited_per_client_address(make: Factory, alice: User) -> None:
    client = make.client()
    attempts = [
        (await client.post("/api/auth/login", json={"email": alice.email, "password": "wrong"})).status_code
        for _ in range(3)
    ]
    assert attempts == [401, 401, 429]
    refused = await client.post("/api/auth/login", json={"email": alice.email, "password": PASSWORD})
    assert refused.status_code == 429 and "too many login attempts" in refused.json()["detail"]
