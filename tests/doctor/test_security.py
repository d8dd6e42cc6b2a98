"""Security checks, each against the bad condition made for real."""

from __future__ import annotations

from pathlib import Path

import pytest

from memex.accounts import passwords
from memex.accounts import store as accounts
from memex.doctor import security
from memex.doctor.models import Severity
from memex.runtime import Runtime
from tests.doctor.conftest import MakeContext, by_check, only


async def test_authentication_off_on_a_network_address_is_critical(offline_context: MakeContext) -> None:
    found = await security.authentication(offline_context(auth=False, host="0.0.0.0"))
    finding = only(found, "security.auth")
    assert finding.severity is Severity.critical
    assert "MEMEX_AUTH=false" in finding.found and finding.fix


async def test_authentication_off_on_loopback_is_low(offline_context: MakeContext) -> None:
    found = await security.authentication(offline_context(auth=False))
    assert only(found, "security.auth").severity is Severity.low


async def _admin(runtime: Runtime, email: str, password: str) -> None:
    async with runtime.engine.begin() as conn:
        await accounts.insert_user(conn, email=email, password_hash=passwords.hash_password(password), is_admin=True)


async def test_first_admin_on_a_common_password_is_critical_when_exposed(
    runtime: Runtime, make_context: MakeContext
) -> None:
    await _admin(runtime, "admin@localhost", "changeme")
    finding = only(await security.admin_password(make_context(host="0.0.0.0")), "security.admin_password")
    assert finding.severity is Severity.critical
    assert "admin@localhost" in finding.found and "memex users disable admin@localhost" in finding.fix


async def test_first_admin_on_a_weak_bootstrap_password(runtime: Runtime, make_context: MakeContext) -> None:
    await _admin(runtime, "root@example.com", "short-pw")
    ctx = make_context(admin_email="root@example.com", admin_password="short-pw")
    finding = only(await security.admin_password(ctx), "security.admin_password")
    assert finding.severity is Severity.medium  # loopback: only this machine can try it
    assert "characters" in finding.found


async def test_strong_bootstrap_password_still_in_the_configuration_is_low(
    runtime: Runtime, make_context: MakeContext
) -> None:
    strong = "Wq7-zX2p!rT9vLm4"
    await _admin(runtime, "admin@localhost", strong)
    finding = only(await security.admin_password(make_context(admin_password=strong)), "security.admin_password")
    assert finding.severity is Severity.low and "MEMEX_ADMIN_PASSWORD" in finding.found


async def test_weak_bootstrap_password_before_the_first_start(make_context: MakeContext) -> None:
    ctx = make_context(host="0.0.0.0", admin_password="changeme")
    finding = only(await security.admin_password(ctx), "security.admin_password")
    assert finding.severity is Severity.high and "refuses to start" in finding.found


async def test_generated_admin_password_is_fine(runtime: Runtime, make_context: MakeContext) -> None:
    await _admin(runtime, "admin@localhost", passwords.generate())
    finding = only(await security.admin_password(make_context(host="0.0.0.0")), "security.admin_password")
    assert finding.severity is Severity.info


async def test_secret_file_readable_by_everyone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, offline_context: MakeContext
) -> None:
    secret = tmp_path / "metrics_token"
    secret.write_text("a-long-random-metrics-token\n")
    secret.chmod(0o644)
    monkeypatch.setenv("MEMEX_METRICS_TOKEN_FILE", str(secret))
    found = await security.secrets(offline_context(metrics_token="a-long-random-metrics-token"))
    finding = only(found, "security.secret_file_mode")
    assert finding.severity is Severity.medium
    assert str(secret) in finding.found and "-rw-r--r--" in finding.found and "chmod 600" in finding.fix
    # Given through a file, it is not reported as inline.
    assert all("MEMEX_METRICS_TOKEN" not in f.found for f in by_check(found, "security.secrets_inline"))

    secret.chmod(0o600)
    assert not by_check(await security.secrets(offline_context(metrics_token="x")), "security.secret_file_mode")


async def test_inline_secrets_are_named(offline_context: MakeContext) -> None:
    finding = only(
        await security.secrets(offline_context(host="0.0.0.0", llm_api_key="sk-inline")), "security.secrets_inline"
    )
    assert finding.severity is Severity.medium
    assert "MEMEX_LLM_API_KEY" in finding.found and "MEMEX_DATABASE_URL" in finding.found
    assert "sk-inline" not in finding.found + finding.fix


async def test_wildcard_hosts_and_plain_http_origins(offline_context: MakeContext) -> None:
    found = await security.cors_and_hosts(
        offline_context(allowed_hosts=["*"], cors_origins=["http://app.example.com", "https://ok.example.com"])
    )
    assert only(found, "security.allowed_hosts").severity is Severity.medium
    cors = only(found, "security.cors")
    assert cors.severity is Severity.medium and "http://app.example.com" in cors.found
    assert "https://ok.example.com" not in cors.found


async def test_disabled_login_rate_limit_is_high_when_exposed(offline_context: MakeContext) -> None:
    found = await security.rate_limits(offline_context(host="0.0.0.0", rate_limit_login="0", rate_limit_search=""))
    assert only(found, "security.rate_limit_login").severity is Severity.high
    assert only(found, "security.rate_limit_search").severity is Severity.medium
    assert not by_check(found, "security.rate_limit_chat")


async def test_metrics_without_token_on_a_network_address(offline_context: MakeContext) -> None:
    assert only(await security.metrics(offline_context(host="0.0.0.0")), "security.metrics").severity is Severity.medium
    protected = offline_context(host="0.0.0.0", metrics_token="a-token")
    assert only(await security.metrics(protected), "security.metrics").severity is Severity.info
    assert only(await security.metrics(offline_context()), "security.metrics").severity is Severity.info
