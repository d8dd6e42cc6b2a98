"""A throwaway embedded Postgres in a temporary folder, for `backup verify`."""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg

from memex.errors import BackupError

DATABASE = "memex_verify"


@contextlib.contextmanager
def scratch_server() -> Iterator[str]:
    """Start a new server, create a database in it, yield its URL; everything is deleted afterwards."""
    import pgserver

    logging.getLogger("pgserver").setLevel(logging.WARNING)
    # Short: Postgres puts its Unix socket in the folder, and socket paths are limited to about 100 bytes.
    base = "/tmp" if Path("/tmp").is_dir() else None
    folder = Path(tempfile.mkdtemp(prefix="memex-verify-", dir=base))
    server = None
    try:
        try:
            server = pgserver.get_server(folder / "pg", cleanup_mode="delete")  # type: ignore[attr-defined]
            with psycopg.connect(server.get_uri("postgres"), autocommit=True) as conn:
                conn.execute(f"CREATE DATABASE {DATABASE}")
        except Exception as exc:  # pgserver raises bare subprocess and OS errors
            raise BackupError(f"could not start a scratch Postgres to verify in {folder}: {exc}") from exc
        yield str(server.get_uri(DATABASE))
    finally:
        if server is not None:
            with contextlib.suppress(Exception):
                server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)
