"""Every request leaves one structured log line, with its route and status and without the caller's secret."""

import json
import logging

import httpx
import pytest
import structlog

from memex.api.app import create_app
from memex.logging import configure_logging
from memex.runtime import Runtime


@pytest.fixture
def json_logs(runtime: Runtime, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    configure_logging(runtime.settings.model_copy(update={"log_format": "json"}))
    yield
    structlog.reset_defaults()
    logging.getLogger().handlers.clear()


async def test_request_is_logged_with_route_status_and_no_secret(
    runtime: Runtime, json_logs: None, capsys: pytest.CaptureFixture[str]
) -> None:
    app = create_app(runtime.settings, runtime=runtime)
    secret = "mx_abcd1234_thisisnotarealsecretvalue"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        response = await client.get("/api/kbs", headers={"Authorization": f"Bearer {secret}", "X-Request-ID": "req-42"})
    assert response.status_code == 401
    assert response.headers["X-Request-ID"] == "req-42"
    err = capsys.readouterr().err
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    access = [line for line in lines if line.get("event") == "request"]
    assert access and access[-1]["route"] == "/api/kbs" and access[-1]["status"] == 401
    assert access[-1]["request_id"] == "req-42" and access[-1]["latency_ms"] >= 0
    assert "thisisnotarealsecretvalue" not in err
