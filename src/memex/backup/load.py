"""Loading an archive's dump into a database: pg_restore's SQL piped into psql, all in one transaction.

The archive is read (and checked) segment by segment straight into pg_restore, so nothing is held in memory.
psql runs the whole script with --single-transaction and ON_ERROR_STOP: a restore that fails part way, or an
archive found damaged part way, leaves the database as it was. On any failure psql is killed before
pg_restore's input is closed, so it can never commit a partial script.
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
from pathlib import Path
from typing import IO, Any

from memex.backup import pgtools, store
from memex.backup.archive import ArchiveReader
from memex.backup.models import Progress
from memex.errors import BackupError

# Building the HNSW index is most of a restore's time; it is several times faster when the graph fits in memory.
_RESTORE_OPTIONS = "-c maintenance_work_mem=512MB"


def check_archive(path: Path, *, passphrase: str | None, progress: Progress) -> dict[str, Any]:
    """Read the whole archive and check it, loading nothing; returns its manifest."""
    progress.start("checking", path.stat().st_size)
    with _open(path) as f:
        manifest, _, _ = ArchiveReader(f, passphrase=passphrase, on_read=progress.advance).read(lambda _: None)
    return manifest


def load(
    path: Path, *, url: str, tools: pgtools.Tools, passphrase: str | None, replace: bool, progress: Progress
) -> dict[str, Any]:
    """Restore the archive's dump into `url`; with `replace`, everything in its public schema goes first."""
    target = pgtools.target(url)
    env = {**target.env, "PGOPTIONS": f"{target.env.get('PGOPTIONS', '')} {_RESTORE_OPTIONS}".strip()}
    first = ["-c", store.empty_schema_sql()] if replace else []
    progress.start("restoring", path.stat().st_size)
    with _open(path) as f, tempfile.TemporaryFile() as restore_errors, tempfile.TemporaryFile() as psql_errors:
        reader = ArchiveReader(f, passphrase=passphrase, on_read=progress.advance)
        restore = subprocess.Popen(
            [
                tools.path("pg_restore"),
                "--format=custom",
                "--no-owner",
                "--no-privileges",
                "--exit-on-error",
                "--file=-",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=restore_errors,
            env=env,
        )
        assert restore.stdin is not None and restore.stdout is not None
        psql = subprocess.Popen(
            [
                tools.path("psql"),
                "--no-psqlrc",
                "--quiet",
                "--set=ON_ERROR_STOP=1",
                "--single-transaction",
                f"--dbname={target.conninfo}",
                *first,
                "-f",
                "-",
            ],
            stdin=restore.stdout,
            stdout=subprocess.DEVNULL,
            stderr=psql_errors,
            env=env,
        )
        restore.stdout.close()  # psql holds it now; pg_restore sees a closed pipe if psql dies
        try:
            manifest, _, _ = reader.read(lambda data: _feed(restore.stdin, data))  # type: ignore[arg-type]
        except BaseException as exc:
            psql.kill()
            psql.wait()
            restore.kill()
            restore.wait()
            # Its input pipe too: left open, it is closed (with a ResourceWarning) whenever the collector finds it.
            with contextlib.suppress(OSError):
                restore.stdin.close()
            if isinstance(exc, BrokenPipeError):
                raise BackupError(_failure(restore_errors, psql_errors)) from None
            raise
        with contextlib.suppress(BrokenPipeError):
            restore.stdin.close()
        restore_code, psql_code = restore.wait(), psql.wait()
        if restore_code != 0 or psql_code != 0:
            raise BackupError(_failure(restore_errors, psql_errors))
    return manifest


def _feed(pipe: IO[bytes], data: bytes) -> None:
    pipe.write(data)


def _failure(restore_errors: IO[bytes], psql_errors: IO[bytes]) -> str:
    messages = []
    for name, stream in (("pg_restore", restore_errors), ("psql", psql_errors)):
        stream.seek(0)
        text = stream.read().decode(errors="replace")
        if text.strip():
            messages.append(f"{name}: {pgtools.stderr_tail(text, lines=4)}")
    return "the restore failed and nothing was changed: " + ("; ".join(messages) or "the client programs stopped")


def _open(path: Path) -> IO[bytes]:
    try:
        return open(path, "rb")
    except OSError as exc:
        raise BackupError(f"cannot read {path}: {exc.strerror or exc}") from exc
