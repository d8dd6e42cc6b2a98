"""Keeps the embedded Postgres from outliving every Memex process that uses it, even ones killed with SIGKILL.

pgserver records the pid of each process holding the server in `PGDATA/.handle_pids.json` and stops the server
when the last of them exits normally. A process killed outright never removes its pid, so the server would run
on forever. One guard process per data folder (started by `EmbeddedPostgres`) drops dead pids from that list
and stops the server, under pgserver's own lock, once no live process holds it.

    python -m memex.db.embedded_guard PGDATA
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

PIDS_FILE = ".handle_pids.json"
GUARD_FILE = ".memex_guard.pid"
POLL_SECONDS = 1.0
STOP_WAIT_SECONDS = 30.0


def lock() -> contextlib.AbstractContextManager[object]:
    """pgserver's own inter-process lock, which it holds while starting a server and adding a user."""
    from pgserver.postgres_server import PostgresServer

    lock: contextlib.AbstractContextManager[object] = PostgresServer._lock
    return lock


def _alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def forget_dead_users(pg_dir: Path) -> list[int]:
    """Drop the pids of processes that died holding the server; returns the live ones. Call under the lock."""
    path = pg_dir / PIDS_FILE
    try:
        pids = [int(p) for p in json.loads(path.read_text())]
    except (OSError, ValueError):
        return []
    live = [pid for pid in pids if _alive(pid)]
    if live != pids:
        path.write_text(json.dumps(live))
    return live


def _postmaster_pid(pg_dir: Path) -> int | None:
    try:
        pid = int((pg_dir / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if _alive(pid) else None


def _running_guard(pg_dir: Path) -> int | None:
    try:
        pid = int((pg_dir / GUARD_FILE).read_text())
    except (OSError, ValueError):
        return None
    with contextlib.suppress(psutil.Error):
        if _alive(pid) and "memex.db.embedded_guard" in " ".join(psutil.Process(pid).cmdline()):
            return pid
    return None


def _guard_command(pg_dir: Path) -> list[str]:
    return [sys.executable, "-m", "memex.db.embedded_guard", str(pg_dir)]


def ensure_guard(pg_dir: Path) -> None:
    """Start the guard of this data folder unless one is running."""
    if _running_guard(pg_dir) is not None:
        return
    # Started through a shell that exits at once, so the guard is nobody's child: it outlives its starter
    # and is never left for the starter to reap.
    subprocess.run(
        ["/bin/sh", "-c", '"$@" </dev/null >/dev/null 2>&1 &', "memex-guard", *_guard_command(pg_dir)],
        check=False,
        start_new_session=True,  # not in the starter's process group: a Ctrl-C there must not stop the guard
    )


def guard(pg_dir: Path) -> None:
    """Poll until the server is stopped (by its last user, or here once no user is alive)."""
    while True:
        time.sleep(POLL_SECONDS)
        with lock():
            postmaster = _postmaster_pid(pg_dir)
            if postmaster is None:
                return
            if forget_dead_users(pg_dir):
                continue
            # Fast shutdown: open sessions are rolled back; nobody is left to hold one.
            os.kill(postmaster, signal.SIGINT)
            deadline = time.monotonic() + STOP_WAIT_SECONDS
            while _alive(postmaster) and time.monotonic() < deadline:
                time.sleep(0.1)
            return


def main() -> None:
    pg_dir = Path(sys.argv[1])
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with lock():
        if _running_guard(pg_dir) not in (None, os.getpid()):
            return  # two processes started a guard at once: one is enough
        (pg_dir / GUARD_FILE).write_text(str(os.getpid()))
    try:
        guard(pg_dir)
    finally:
        with contextlib.suppress(OSError):
            if (pg_dir / GUARD_FILE).read_text() == str(os.getpid()):
                (pg_dir / GUARD_FILE).unlink()


if __name__ == "__main__":
    main()
