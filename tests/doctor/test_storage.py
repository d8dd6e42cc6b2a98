"""Free disk and backups: thresholds set so this machine's disk trips them, and real backup status rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from memex.backup import status
from memex.doctor import storage
from memex.doctor.context import Thresholds
from memex.doctor.models import Severity
from memex.runtime import Runtime
from tests.doctor.conftest import MakeContext, add_document, by_check, only


async def test_too_little_free_disk_is_high(make_context: MakeContext) -> None:
    found = await storage.disk(make_context(thresholds=Thresholds(min_free_bytes=1 << 60)))
    finding = only(found, "storage.data_disk")
    assert finding.severity is Severity.high and "MEMEX_DATA_DIR" in finding.fix
    assert only(found, "storage.backup_disk").severity is Severity.high


async def test_enough_free_disk_is_info(make_context: MakeContext) -> None:
    found = await storage.disk(make_context(thresholds=Thresholds(min_free_bytes=1, min_free_ratio=0)))
    assert {f.severity for f in found} == {Severity.info}


async def test_no_backup_of_a_database_with_documents_is_high(runtime: Runtime, make_context: MakeContext) -> None:
    assert only(await storage.backups(make_context()), "backup.last").severity is Severity.info
    await add_document(runtime, name="a.md")
    finding = only(await storage.backups(make_context()), "backup.last")
    assert finding.severity is Severity.high and "memex backup create" in finding.fix


async def test_backup_age_and_verification(runtime: Runtime, make_context: MakeContext) -> None:
    await add_document(runtime, name="a.md")
    async with runtime.engine.begin() as conn:
        await status.record_backup(conn, at=datetime.now(UTC) - timedelta(days=10), path="/b/old.tar", backup_id="x")
    found = await storage.backups(make_context())
    assert only(found, "backup.last").severity is Severity.high
    assert only(found, "backup.verified").severity is Severity.medium

    async with runtime.engine.begin() as conn:
        await status.record_backup(conn, at=datetime.now(UTC), path="/b/new.tar", backup_id="y")
        await status.record_verified(conn, at=datetime.now(UTC))
    found = await storage.backups(make_context())
    assert only(found, "backup.last").severity is Severity.info
    assert not by_check(found, "backup.verified")


async def test_failed_backup_is_high(runtime: Runtime, make_context: MakeContext) -> None:
    async with runtime.engine.begin() as conn:
        await status.record_error(conn, "pg_dump: connection refused")
    finding = only(await storage.backups(make_context()), "backup.error")
    assert finding.severity is Severity.high and "pg_dump: connection refused" in finding.found
