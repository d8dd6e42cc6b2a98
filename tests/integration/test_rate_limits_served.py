"""Two real `memex serve` instances on one database and one Redis share each caller's rate limit."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.conftest import clone_database, drop_database
from tests.integration.test_serve import memex_env, start_server, stop_server


def test_two_instances_count_one_limit_through_redis(
    pg_server_url: str, template_url: str, model_cache_dir: Path, redis_url: str, tmp_path: Path
) -> None:
    database_url = clone_database(pg_server_url)
    limits = {"MEMEX_REDIS_URL": redis_url, "MEMEX_RATE_LIMIT_SEARCH": "5/minute"}
    first = start_server(env=memex_env(database_url, tmp_path / "a", model_cache_dir, **limits), log=tmp_path / "a.log")
    second = None
    try:
        second = start_server(
            env=memex_env(database_url, tmp_path / "b", model_cache_dir, **limits), log=tmp_path / "b.log"
        )
        statuses = []
        for n in range(7):
            served = (first, second)[n % 2]
            response = httpx.get(
                f"{served.url}/api/search",
                params={"q": "anything"},
                headers={"Authorization": f"Bearer {first.key}"},
                timeout=30,
            )
            statuses.append(response.status_code)
        assert statuses == [200, 200, 200, 200, 200, 429, 429]
        ready = httpx.get(f"{second.url}/api/health/ready", timeout=30).json()["components"]["redis"]
        assert ready["ok"] is True and "shared" in ready["detail"]
    finally:
        for served in (first, second):
            if served is not None:
                stop_server(served)
        drop_database(pg_server_url, database_url)
