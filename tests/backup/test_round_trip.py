"""Create, verify, wipe, restore: everything comes back, and damage or a wrong key is caught."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import psycopg
import pytest
from pydantic import SecretStr

from memex.api.app import create_app
from memex.backup import create, restore, store, verify
from memex.db.engine import libpq_url
from memex.kbs.access import Actor
from memex.runtime import Runtime, open_runtime
from memex.search import service
from memex.search.models import SearchRequest
from memex.settings import Settings
from tests.backup.conftest import QUERIES, TEXTS, populate
from tests.conftest import make_settings
from tests.factories import PASSWORD, Factory


def counts(url: str) -> dict[str, int]:
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        return store.row_counts(conn)


async def results(runtime: Runtime) -> dict[str, list[tuple[int, float]]]:
    found = {}
    for query in QUERIES:
        hits = await service.search(runtime, Actor.system(), SearchRequest(query=query, limit=10))
        found[query] = [(r.chunk_id, round(r.score, 6)) for r in hits]
    return found


async def test_create_wipe_restore_brings_everything_back(
    settings: Settings, runtime: Runtime, make: Factory, empty_database: str, tmp_path: Path, model_cache_dir: Path
) -> None:
    data = await populate(make)
    before_counts, before_results = counts(runtime.database_url), await results(runtime)
    assert all(before_results.values())

    created = await create.create(settings, url=runtime.database_url, out_dir=tmp_path / "b", embedder=runtime.embedder)
    assert created.samples >= 2 and created.tables == before_counts
    checked = await verify.verify(settings, created.path, embedder=runtime.embedder)
    assert checked.ok, checked.as_dict()
    assert {c.name for c in checked.checks} >= {"archive", "restore", "row counts", "original files", "searches"}

    target = make_settings(empty_database, tmp_path / "data2", model_cache_dir)
    restored = await restore.restore(target, created.path, url=empty_database, force=False)
    assert restored.tables == before_counts and not restored.migrated and not restored.warnings

    again = await open_runtime(target)
    again.use_embedder(runtime.embedder)
    try:
        assert await results(again) == before_results
        app = create_app(target, runtime=again)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://memex.test") as client:
            keyed = {"Authorization": f"Bearer {data.key}"}
            assert (await client.get("/api/kbs", headers=keyed)).status_code == 200
            for name, doc_id in data.documents.items():
                file = await client.get(f"/api/documents/{doc_id}/file", headers=keyed)
                assert file.status_code == 200 and file.content == TEXTS[name].encode()
            login = await client.post("/api/auth/login", json={"email": "reader@example.com", "password": PASSWORD})
            assert login.status_code == 200, login.text
            conversation = await client.get(f"/api/conversations/{data.conversation_id}", headers=keyed)
            assert conversation.status_code == 200
            assert [m["content"] for m in conversation.json()["messages"]] == [
                "Where do herons wait?",
                "By the river [1].",
            ]
    finally:
        await again.close()


async def test_restore_refuses_a_database_with_data_unless_forced(
    settings: Settings, runtime: Runtime, make: Factory, tmp_path: Path
) -> None:
    await populate(make)
    before = counts(runtime.database_url)
    created = await create.create(settings, url=runtime.database_url, out_dir=tmp_path)
    from memex.errors import BackupError

    with pytest.raises(BackupError, match=r"already holds data.*--force"):
        await restore.restore(settings, created.path, url=runtime.database_url, force=False)
    await make.user(email="after-the-backup@example.com")
    await runtime.engine.dispose()  # a restore wants the database to itself
    restored = await restore.restore(settings, created.path, url=runtime.database_url, force=True)
    assert restored.tables == before
    after = counts(runtime.database_url)
    assert after["users"] == before["users"] and after["audit_log"] == before["audit_log"] + 1


async def test_verify_catches_damage_truncation_and_a_wrong_key(
    settings: Settings, runtime: Runtime, make: Factory, tmp_path: Path
) -> None:
    await populate(make)
    keyed = settings.model_copy(update={"backup_key": SecretStr("the right passphrase")})
    created = await create.create(keyed, url=runtime.database_url, out_dir=tmp_path / "b")

    flipped = tmp_path / "flipped.backup"
    data = bytearray(created.path.read_bytes())
    data[len(data) // 2] ^= 0x40
    flipped.write_bytes(bytes(data))
    truncated = tmp_path / "truncated.backup"
    truncated.write_bytes(created.path.read_bytes()[:-200])

    for path, reason in (
        (flipped, "damaged or was tampered with"),
        (truncated, "truncated"),
    ):
        result = await verify.verify(keyed, path)
        assert not result.ok and reason in (result.reason or ""), result.as_dict()
    wrong = keyed.model_copy(update={"backup_key": SecretStr("a wrong passphrase")})
    result = await verify.verify(wrong, created.path)
    assert not result.ok and "wrong backup key" in (result.reason or "")
    assert (await verify.verify(keyed, created.path)).ok


def test_the_cli_reports_a_damaged_archive_for_a_person(tmp_path: Path, settings: Settings) -> None:
    bad = tmp_path / "bad.backup"
    bad.write_bytes(b"MEMEXBAK\x01\x00\x00\x00\x02{}" + b"D\x00\x00\x00\x00\x10abc")
    env = {"PATH": "/usr/bin:/bin", "MEMEX_DATA_DIR": str(tmp_path / "data"), "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "memex", "backup", "verify", str(bad)], capture_output=True, text=True, env=env
    )
    assert done.returncode == 1
    assert "truncated" in done.stderr and "Traceback" not in done.stderr


async def test_a_backup_made_during_ingestion_restores_consistently(
    settings: Settings, runtime: Runtime, make: Factory, empty_database: str, tmp_path: Path, model_cache_dir: Path
) -> None:
    data = await populate(make)
    owner_kb = await make.get_kb((await make.personal_kb(await make.user())).id)
    stop = asyncio.Event()

    async def ingest() -> int:
        n = 0
        while not stop.is_set():
            await make.document(owner_kb, name=f"note-{n}.md", text=f"# Note {n}\n\nThe ibis number {n} wades.\n")
            n += 1
        return n

    writer = asyncio.create_task(ingest())
    await asyncio.sleep(0.3)
    created = await create.create(settings, url=runtime.database_url, out_dir=tmp_path)
    stop.set()
    written = await writer
    assert written > 0 and data.documents

    checked = await verify.verify(settings, created.path, embedder=runtime.embedder)
    assert checked.ok, checked.as_dict()
    target = make_settings(empty_database, tmp_path / "data2", model_cache_dir)
    restored = await restore.restore(target, created.path, url=empty_database, force=False)
    assert restored.tables == created.tables
    with psycopg.connect(libpq_url(empty_database), autocommit=True) as conn:
        mismatched = conn.execute(
            "SELECT d.id FROM documents d LEFT JOIN chunks c ON c.document_id = d.id "
            "GROUP BY d.id, d.chunk_count HAVING d.chunk_count <> count(c.id)"
        ).fetchall()
        assert mismatched == []
        stats = conn.execute("SELECT coalesce(sum(chunks), 0) FROM kb_chunk_stats").fetchone()
        total = conn.execute("SELECT count(*) FROM chunks").fetchone()
        assert stats == total


def test_a_pg_dump_of_another_major_version_is_refused(settings: Settings, tmp_path: Path) -> None:
    other = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    if not other or not shutil.which("pg_dump"):
        pytest.skip("no system PostgreSQL client of another version installed")
    from memex.backup import pgtools
    from memex.errors import BackupError

    with pytest.raises(BackupError, match=r"same major version \(16\).*MEMEX_BACKUP_PG_BIN_DIR"):
        pgtools.find_tools(16, "16.2", configured=other[0], embedded=False)


def _memex(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "memex", *args], capture_output=True, text=True, env=env, timeout=300)


async def test_the_cli_creates_lists_restores_and_prunes(
    settings: Settings, runtime: Runtime, make: Factory, tmp_path: Path, model_cache_dir: Path
) -> None:
    import json
    import os

    await populate(make)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMEX_")} | {
        "MEMEX_DATABASE_URL": runtime.database_url,
        "MEMEX_DATA_DIR": str(tmp_path / "data"),
        "MEMEX_MODEL_CACHE_DIR": str(model_cache_dir),
        "MEMEX_BACKUP_DIR": str(tmp_path / "backups"),
    }
    done = await asyncio.to_thread(_memex, "backup", "create", "--json", env=env)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert Path(summary["path"]).exists() and summary["rows"] > 0 and summary["samples"] > 0
    listed = json.loads((await asyncio.to_thread(_memex, "backup", "list", "--json", env=env)).stdout)
    assert [a["path"] for a in listed] == [summary["path"]] and listed[0]["verified"] is False

    refused = await asyncio.to_thread(_memex, "backup", "restore", summary["path"], env=env)
    assert refused.returncode == 1 and "already holds data" in refused.stderr and "Traceback" not in refused.stderr

    pruned = await asyncio.to_thread(_memex, "backup", "prune", "--keep-days", "0", "--json", env=env)
    assert pruned.returncode == 0 and json.loads(pruned.stdout) == {"kept": [summary["path"]], "deleted": []}
    async with runtime.engine.connect() as conn:
        from memex.backup import status

        recorded = await status.read(conn)
    assert recorded.last_backup_path == summary["path"]
