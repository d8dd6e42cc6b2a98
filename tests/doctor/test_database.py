"""Database checks against a real Postgres whose state is changed the way it goes wrong."""

from __future__ import annotations

import json

import sqlalchemy as sa

from memex.doctor import database, tuning
from memex.doctor.models import Severity
from memex.doctor.tuning import GIB, MIB
from memex.runtime import Runtime
from tests.doctor.conftest import MakeContext, only


async def test_versions_are_reported(make_context: MakeContext) -> None:
    finding = only(await database.versions(make_context()), "database.versions")
    assert finding.severity is Severity.info and finding.data["pgvector"]


async def test_stored_embedding_model_differs_from_the_configured_one(
    runtime: Runtime, make_context: MakeContext
) -> None:
    async with runtime.engine.begin() as conn:
        await conn.execute(
            sa.text("UPDATE memex_meta SET value = CAST(:v AS jsonb) WHERE key = 'embedding_model'"),
            {"v": json.dumps({"name": "bge-large", "dimension": 1024})},
        )
    finding = only(await database.embedding_model(make_context()), "database.embedding_model")
    assert finding.severity is Severity.critical
    assert "bge-large (1024 dimensions)" in finding.found and "memex reembed" in finding.fix


async def test_configured_dimension_differs_from_the_column(make_context: MakeContext) -> None:
    found = await database.embedding_model(make_context(embedding_dimension=768))
    column = only(found, "database.embedding_dimension")
    assert column.severity is Severity.critical and "384-dimensional" in column.found


async def test_migrations_behind_and_unknown(runtime: Runtime, make_context: MakeContext) -> None:
    async with runtime.engine.begin() as conn:
        await conn.execute(sa.text("UPDATE alembic_version SET version_num = '0001'"))
    behind = only(await database.migrations(make_context()), "database.migrations")
    assert behind.severity is Severity.high and "memex migrate" in behind.fix
    async with runtime.engine.begin() as conn:
        await conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    ahead = only(await database.migrations(make_context()), "database.migrations")
    assert ahead.severity is Severity.critical


async def test_migrations_at_head(make_context: MakeContext) -> None:
    assert only(await database.migrations(make_context()), "database.migrations").severity is Severity.info


async def test_postgres_settings_are_computed_from_real_figures(make_context: MakeContext) -> None:
    finding = only(await tuning.postgres_settings(make_context()), "postgres.settings")
    data = finding.data
    assert data["memory_bytes"] and data["current"]["max_connections"]
    assert any(line.startswith("shared_buffers = ") for line in data["postgresql_conf"])
    assert "postgresql.conf" in finding.fix and data["postgresql_conf"][0] in finding.fix


def test_index_larger_than_memory_is_high_and_settings_follow_it() -> None:
    ram, hnsw = 8 * GIB, 6 * GIB
    current = {
        "shared_buffers": 128 * MIB,
        "effective_cache_size": 4 * GIB,
        "work_mem": 4 * MIB,
        "maintenance_work_mem": 64 * MIB,
        "max_connections": 40,
        "superuser_reserved_connections": 3,
    }
    wanted = tuning.recommend(ram=ram, hnsw=hnsw, processes=3, reserved=3)
    assert wanted["shared_buffers"] == 2 * GIB and wanted["max_connections"] == 100
    assert wanted["maintenance_work_mem"] == 2 * GIB  # capped at a quarter of memory
    advice = tuning.advise(current=current, wanted=wanted, ram=ram, hnsw=hnsw)
    assert advice[0].severity is Severity.high and "larger than half of memory" in advice[0].text
    assert any("max_connections leaves 37" in a.text for a in advice)
    assert any("maintenance_work_mem" in a.text for a in advice)


def test_shared_buffers_grow_to_hold_the_index_when_memory_allows() -> None:
    wanted = tuning.recommend(ram=16 * GIB, hnsw=5 * GIB, processes=2, reserved=3)
    assert wanted["shared_buffers"] == 7 * GIB  # the index and a quarter more, rounded up to whole GB
    assert tuning.size(wanted["effective_cache_size"]) == "8GB" and tuning.size(wanted["shared_buffers"]) == "7GB"
