"""The PostgreSQL client programs (pg_dump, pg_restore, psql): which to run, and how to point them at a database.

A dump must be made by a `pg_dump` of the server's own major version (an older one refuses, a newer one writes
an archive the server's `pg_restore` may not read). The embedded server ships its own; for MEMEX_DATABASE_URL
they are looked for in MEMEX_BACKUP_PG_BIN_DIR alone when it is set, else on PATH, in the usual package folders,
and last among the embedded server's programs.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from memex.db.engine import libpq_url
from memex.errors import BackupError

PROGRAMS = ("pg_dump", "pg_restore", "psql")
_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")
_PACKAGE_DIRS = (
    "/usr/lib/postgresql/*/bin",
    "/usr/pgsql-*/bin",
    "/usr/local/opt/postgresql@*/bin",
    "/opt/homebrew/opt/postgresql@*/bin",
)


@dataclass(frozen=True)
class Tools:
    """pg_dump, pg_restore and psql from one folder, of one major version."""

    bin_dir: Path
    version: str
    major: int

    def path(self, program: str) -> str:
        return str(self.bin_dir / program)


@dataclass(frozen=True)
class Target:
    """A database as the client programs want it: a conninfo without the password, and an environment with it."""

    conninfo: str
    env: dict[str, str]


def target(url: str) -> Target:
    """Split a database URL so the password travels in PGPASSWORD, never on a command line others can read."""
    params = conninfo_to_dict(libpq_url(url))
    password = params.pop("password", None)
    env = dict(os.environ)
    if password:
        env["PGPASSWORD"] = str(password)
    return Target(conninfo=make_conninfo(**{k: str(v) for k, v in params.items() if v is not None}), env=env)


def embedded_bin_dir() -> Path:
    import pgserver

    return Path(pgserver._commands.POSTGRES_BIN_PATH)


def version_of(program: Path) -> tuple[str, int] | None:
    """`pg_dump --version` as ("16.2", 16), or None when it does not run."""
    try:
        out = subprocess.run([str(program), "--version"], capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    found = _VERSION.search(out)
    if found is None:
        return None
    return f"{found.group(1)}.{found.group(2) or 0}", int(found.group(1))


def candidate_dirs(configured: Path | None) -> list[Path]:
    """Folders that may hold the client programs, most preferred first."""
    if configured is not None:
        return [configured]
    found: list[Path] = []
    on_path = shutil.which("pg_dump")
    if on_path:
        found.append(Path(on_path).parent)
    for pattern in _PACKAGE_DIRS:
        found += sorted((Path(p) for p in glob.glob(pattern)), reverse=True)
    found.append(embedded_bin_dir())
    return list(dict.fromkeys(found))


def find_tools(server_major: int, server_version: str, *, configured: Path | None, embedded: bool) -> Tools:
    """Client programs of the server's major version; a BackupError says what to install when there are none."""
    dirs = [embedded_bin_dir()] if embedded else candidate_dirs(configured)
    seen: list[str] = []
    for folder in dirs:
        if not all((folder / program).exists() for program in PROGRAMS):
            continue
        version = version_of(folder / "pg_dump")
        if version is None:
            continue
        if version[1] == server_major:
            return Tools(bin_dir=folder, version=version[0], major=version[1])
        seen.append(f"{version[0]} in {folder}")
    where = (
        f"MEMEX_BACKUP_PG_BIN_DIR ({configured})"
        if configured is not None
        else "PATH, /usr/lib/postgresql/*/bin and the embedded Postgres"
    )
    found = f"found only {', '.join(seen)}" if seen else f"found none in {where}"
    raise BackupError(
        f"the database server runs PostgreSQL {server_version}, and backups need pg_dump, pg_restore and psql of the "
        f"same major version ({server_major}); {found}. Install them (e.g. `apt-get install "
        f"postgresql-client-{server_major}`) or set MEMEX_BACKUP_PG_BIN_DIR to the folder that holds them"
    )


def major_of(server_version_num: int) -> int:
    return server_version_num // 10000


def describe(server_version_num: int) -> str:
    return f"{server_version_num // 10000}.{server_version_num % 10000}"


def stderr_tail(text: str, *, lines: int = 6) -> str:
    """The last lines a client program wrote, for an error message."""
    kept = [line.strip() for line in text.splitlines() if line.strip()]
    return " / ".join(kept[-lines:]) or "(no message)"
