"""Migrations produce exactly the declared schema, and concurrent starts never race."""

import subprocess
import sys

import psycopg
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from memex.db import migrate
from memex.db.engine import sqlalchemy_url
from memex.db.tables import metadata
from tests.conftest import drop_database


def _fresh_empty_database(pg_server_url: str, name: str) -> str:
    from sqlalchemy.engine import make_url

    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return make_url(pg_server_url).set(database=name).render_as_string(hide_password=False)


def _include(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    # procrastinate's tables come from its own schema file, applied by migration 0001.
    return not (type_ == "table" and name is not None and name.startswith("procrastinate"))


def test_upgrade_head_yields_exactly_the_declared_schema(pg_server_url: str) -> None:
    url = _fresh_empty_database(pg_server_url, "memex_schema_check")
    try:
        assert migrate.upgrade(url) is True
        engine = sa.create_engine(sqlalchemy_url(url))
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"include_object": _include, "compare_type": True})
            diff = compare_metadata(context, metadata)
        engine.dispose()
        assert diff == []
    finally:
        drop_database(pg_server_url, url)


def test_upgrade_is_idempotent(database_url: str) -> None:
    assert migrate.upgrade(database_url) is False


def test_concurrent_processes_migrate_once_under_the_lock(pg_server_url: str) -> None:
    url = _fresh_empty_database(pg_server_url, "memex_race_check")
    code = "import sys; from memex.db import migrate; print(migrate.upgrade(sys.argv[1]))"
    try:
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", code, url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            for _ in range(3)
        ]
        results = [p.communicate(timeout=120) for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0], [r[1][-2000:] for r in results]
        applied = sorted(r[0].strip() for r in results)
        assert applied == ["False", "False", "True"]
        with psycopg.connect(url.replace("+psycopg", "")) as conn:
            assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(migrate.head_revision(),)]
    finally:
        drop_database(pg_server_url, url)
