"""The whole doctor: a healthy installation, a database that does not answer, a check that breaks."""

from __future__ import annotations

import socket
from pathlib import Path

from memex.doctor import context, runner
from memex.doctor.context import Context
from memex.doctor.models import Finding, Severity
from memex.settings import Settings
from tests.doctor.conftest import MakeContext, only, severe


async def test_a_healthy_installation_has_no_high_or_critical_finding(make_context: MakeContext) -> None:
    report = await runner.run(make_context())
    assert severe(report.findings) == [], report.findings
    assert not report.blocking and report.summary()["ok"] is True
    checks = {f.check for f in report.findings}
    for expected in (
        "security.auth",
        "security.admin_password",
        "database.migrations",
        "database.embedding_model",
        "postgres.settings",
        "storage.data_disk",
        "backup.last",
        "documents.failed",
        "jobs.queue",
        "llm.reachable",
    ):
        assert expected in checks
    assert [f.severity.rank for f in report.findings] == sorted(f.severity.rank for f in report.findings)
    body = report.as_dict()
    assert set(body) == {"findings", "manual", "summary"}
    assert any(m["check"] == "manual.offsite_backups" for m in body["manual"])


async def test_a_database_that_does_not_answer_is_critical(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = Settings(database_url=f"postgresql://memex@127.0.0.1:{port}/memex", data_dir=tmp_path)  # type: ignore[arg-type]
    async with context.opened(settings) as ctx:
        report = await runner.run(ctx)
    finding = only(report.findings, "database.reachable")
    assert finding.severity is Severity.critical and "MEMEX_DATABASE_URL" in finding.fix
    assert report.blocking
    assert not [f for f in report.findings if f.check.startswith(("database.migrations", "jobs.", "backup."))]


async def test_a_broken_check_becomes_a_finding(make_context: MakeContext) -> None:
    async def explodes(ctx: Context) -> list[Finding]:
        raise RuntimeError("boom")

    report = await runner.run(make_context(), checks=[explodes])
    finding = only(report.findings, "doctor.test_runner.explodes")
    assert finding.severity is Severity.medium and "boom" in finding.found
