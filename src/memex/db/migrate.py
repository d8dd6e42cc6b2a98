"""Schema migrations, applied under a Postgres advisory lock so concurrent starts never race."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.pool import NullPool

from memex.db.engine import sqlalchemy_url

# Arbitrary but fixed: every Memex process that migrates takes this same lock.
MIGRATION_LOCK_ID = 7_302_651_077_889

_SCRIPT_LOCATION = Path(__file__).parent / "migrations"


def alembic_config(connection: sa.Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_SCRIPT_LOCATION))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(connection: sa.Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(url: str, *, before: Callable[[str, str | None], None] | None = None) -> bool:
    """Bring the database to the latest revision; returns whether anything was applied.

    `before(url, current_revision)` runs under the lock just before migrating (once, however many processes
    start together): the pre-upgrade backup. If it raises, nothing is migrated.
    """
    engine = sa.create_engine(sqlalchemy_url(url), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            head = head_revision()
            if current_revision(conn) == head:
                return False
            conn.rollback()
            conn.execute(sa.text("SELECT pg_advisory_lock(:id)"), {"id": MIGRATION_LOCK_ID})
            conn.commit()
            try:
                # Another process may have migrated while we waited for the lock.
                if current_revision(conn) == head:
                    conn.rollback()
                    return False
                revision = current_revision(conn)
                conn.rollback()
                if before is not None:
                    before(url, revision)
                command.upgrade(alembic_config(conn), "head")
                conn.commit()
                return True
            finally:
                conn.rollback()
                conn.execute(sa.text("SELECT pg_advisory_unlock(:id)"), {"id": MIGRATION_LOCK_ID})
                conn.commit()
    finally:
        engine.dispose()
