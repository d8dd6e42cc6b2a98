"""Backups across schema revisions (pre-upgrade, restore of an older one) and the scheduled job."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import sqlalchemy as sa
from alembic import command

from memex.backup import restore, retention, status, verify
from memex.db import migrate
from memex.db.engine import libpq_url, sqlalchemy_url
from memex.jobs.app import build_app
from memex.jobs.backups import run_scheduled_backup
from memex.runtime import Runtime
from memex.settings import Settings
from tests.backup.conftest import populate
from tests.conftest import _with_database, drop_database, make_settings
from tests.factories import Factory


def new_database(pg_server_url: str) -> str:
    name = f"memex_backup_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return _with_database(pg_server_url, name)


def _at_revision(url: str, revision: str) -> None:
    engine = sa.create_engine(sqlalchemy_url(url))
    with engine.begin() as conn:
        command.upgrade(migrate.alembic_config(conn), revision)
    engine.dispose()


def _revision(url: str) -> str:
    with psycopg.connect(libpq_url(url)) as conn:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    assert row is not None
    return str(row[0])


def test_several_migrators_back_up_once_and_the_backup_restores_and_migrates(
    empty_database: str, pg_server_url: str, tmp_path: Path, model_cache_dir: Path
) -> None:
    old = new_database(pg_server_url)
    try:
        _at_revision(old, "0005")
        user_id = uuid.uuid4()
        with psycopg.connect(libpq_url(old), autocommit=True) as conn:
            conn.execute("INSERT INTO users (id, email, password_hash) VALUES (%s, 'old@example.com', 'x')", (user_id,))
            conn.execute("INSERT INTO knowledge_bases (name, owner_id) VALUES ('old notes', %s)", (user_id,))
        backups = tmp_path / "backups"
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEMEX_")} | {
            "MEMEX_DATABASE_URL": old,
            "MEMEX_DATA_DIR": str(tmp_path / "data"),
            "MEMEX_MODEL_CACHE_DIR": str(model_cache_dir),
            "MEMEX_BACKUP_DIR": str(backups),
        }
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "memex", "migrate"],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(3)
        ]
        outputs = [p.communicate(timeout=300) for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0], [o[1][-2000:] for o in outputs]
        assert _revision(old) == migrate.head_revision()
        archives = retention.list_archives(backups)
        assert len(archives) == 1 and archives[0].schema_revision == "0005" and archives[0].reason == "pre-upgrade"

        target = make_settings(empty_database, tmp_path / "data2", model_cache_dir)
        import asyncio

        checked = asyncio.run(verify.verify(target, archives[0].path))
        assert checked.ok and "migration" in {c.name for c in checked.checks}, checked.as_dict()
        restored = asyncio.run(restore.restore(target, archives[0].path, url=empty_database, force=False))
        assert restored.from_revision == "0005" and restored.migrated
        assert _revision(empty_database) == migrate.head_revision()
        with psycopg.connect(libpq_url(empty_database)) as conn:
            assert conn.execute("SELECT email FROM users").fetchall() == [("old@example.com",)]
            assert conn.execute("SELECT name FROM knowledge_bases").fetchall() == [("old notes",)]
    finally:
        drop_database(pg_server_url, old)


def test_no_backup_when_switched_off_or_when_there_is_no_data(
    pg_server_url: str, tmp_path: Path, model_cache_dir: Path
) -> None:
    from memex.backup import preupgrade

    url = new_database(pg_server_url)
    _at_revision(url, "head")
    try:
        settings = make_settings(url, tmp_path / "data", model_cache_dir, backup_dir=tmp_path / "b")
        assert preupgrade.hook(settings.model_copy(update={"backup_before_migrate": False})) is None
        hook = preupgrade.hook(settings)
        assert hook is not None
        hook(url, "0005")  # migrated, but empty
        hook(url, None)
        assert not (tmp_path / "b").exists()
    finally:
        drop_database(pg_server_url, url)


async def test_the_scheduled_job_backs_up_verifies_prunes_and_records(
    settings: Settings, runtime: Runtime, make: Factory, tmp_path: Path
) -> None:
    await populate(make)
    folder = tmp_path / "scheduled"
    runtime.settings = settings.model_copy(
        update={"backup_dir": folder, "backup_schedule": "0 3 * * *", "backup_keep_last": 1, "backup_keep_days": 0}
    )
    async with runtime.engine.connect() as conn:
        assert await status.read(conn) == status.BackupStatus()

    app = build_app(runtime)
    assert any(name == "memex:backup" for name, _ in app.periodic_registry.periodic_tasks)
    async with app.open_async():
        await app.configure_task("memex:backup").defer_async()
        from memex.jobs.app import run_worker

        await run_worker(app, concurrency=1, wait=False)
        jobs = await app.job_manager.list_jobs_async(task="memex:backup")
    assert [j.status for j in jobs] == ["succeeded"]

    async with runtime.engine.connect() as conn:
        first = await status.read(conn)
    assert first.last_backup_at and first.last_verified_at and first.last_error is None
    assert first.last_backup_path and Path(first.last_backup_path).exists()
    listed = retention.list_archives(folder)
    assert [a.path for a in listed] == [Path(first.last_backup_path)] and listed[0].verified_at

    assert await run_scheduled_backup(runtime)  # a second run prunes the first (keep_last 1, keep_days 0)
    async with runtime.engine.connect() as conn:
        second = await status.read(conn)
    assert second.last_backup_path != first.last_backup_path
    assert [str(a.path) for a in retention.list_archives(folder)] == [second.last_backup_path]

    body, _ = await runtime.metrics.exposition(runtime.engine)
    text = body.decode()
    assert second.last_backup_at is not None
    assert f"memex_backup_last_success_timestamp_seconds {second.last_backup_at.timestamp():.9e}" in text or (
        "memex_backup_last_success_timestamp_seconds 1.7" in text
    )
    assert "memex_backup_last_verified_timestamp_seconds 1.7" in text


async def test_a_failed_scheduled_backup_is_recorded(settings: Settings, runtime: Runtime, tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the backup folder should be")
    runtime.settings = settings.model_copy(update={"backup_dir": blocked})
    from memex.errors import MemexError

    try:
        await run_scheduled_backup(runtime)
    except MemexError as exc:
        assert "backup folder" in exc.message
    else:
        raise AssertionError("the backup should have failed")
    async with runtime.engine.connect() as conn:
        recorded = await status.read(conn)
    assert recorded.last_error and "backup folder" in recorded.last_error and recorded.last_backup_at is None
