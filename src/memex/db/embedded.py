"""The embedded Postgres (pgserver) that Memex runs in its data folder when no DATABASE_URL is set."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import psycopg
from psycopg import sql

from memex.db import embedded_guard
from memex.errors import DatabaseUnavailable

DATABASE_NAME = "memex"


class EmbeddedPostgres:
    """A handle on the shared embedded server; the server stops when the last process holding one exits."""

    def __init__(self, data_dir: Path) -> None:
        import pgserver  # imported here: it starts nothing at import, but it is heavy and unused with a DATABASE_URL

        # pgserver logs every step at INFO; its chatter is not our users' business.
        logging.getLogger("pgserver").setLevel(logging.WARNING)
        pg_dir = data_dir / "pg"
        try:
            pg_dir.parent.mkdir(parents=True, exist_ok=True)
            if pg_dir.exists():
                with embedded_guard.lock():
                    embedded_guard.forget_dead_users(pg_dir.resolve())
            self._server = pgserver.get_server(pg_dir, cleanup_mode="stop")  # type: ignore[attr-defined]
            # pgserver stops the server when its last user exits normally; the guard, when the last is killed.
            with embedded_guard.lock():
                embedded_guard.ensure_guard(pg_dir.resolve())
        except Exception as exc:  # pgserver raises bare subprocess and OS errors
            reason = str(exc).strip() or type(exc).__name__
            raise DatabaseUnavailable(
                f"could not start the embedded Postgres in {pg_dir}: {reason} (its log is {pg_dir / 'log'}; "
                "check that the folder is writable and not used by another Postgres version)"
            ) from exc

    def url(self, database: str = DATABASE_NAME) -> str:
        """A libpq URL for `database` on this server (over its Unix socket)."""
        return str(self._server.get_uri(database))

    def ensure_database(self, name: str = DATABASE_NAME) -> None:
        """Create the database if it does not exist yet (several processes may race here)."""
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if exists:
                return
            with contextlib.suppress(psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
