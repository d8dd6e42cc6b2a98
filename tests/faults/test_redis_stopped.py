"""Redis stopped under a running server: Memex keeps serving, counting rate limits in its own memory."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.faults.processes import redis_server
from tests.integration.test_serve import memex_env, start_server, stop_server, wait_for


def test_serving_goes_on_without_redis_and_uses_it_again_when_it_is_back(
    tmp_path: Path, database_url: str, model_cache_dir: Path
) -> None:
    with redis_server(tmp_path) as redis:
        env = memex_env(
            database_url,
            tmp_path / "data",
            model_cache_dir,
            MEMEX_REDIS_URL=redis.url,
            MEMEX_RATE_LIMIT_SEARCH="3/minute",
        )
        served = start_server(env=env, log=tmp_path / "serve.log")
        try:
            with served.client() as api:

                def redis_ok() -> bool:
                    ready = httpx.get(f"{served.url}/api/health/ready", timeout=30)
                    assert ready.status_code == 200  # Redis is never required
                    return bool(ready.json()["components"]["redis"]["ok"])

                assert redis_ok()
                assert api.get("/api/search", params={"q": "heron"}).status_code == 200

                redis.stop()
                assert not redis_ok()
                # Searches still answer, and the limit still holds, counted in this instance's memory.
                answers = [api.get("/api/search", params={"q": "heron"}) for _ in range(4)]
                assert [a.status_code for a in answers] == [200, 200, 200, 429]
                assert answers[0].headers["RateLimit-Limit"] == "3"
                assert answers[-1].json()["detail"].startswith("too many searches")

                redis.start()
                wait_for(redis_ok, timeout=60, what="readiness to see Redis again")
        finally:
            stop_server(served)
