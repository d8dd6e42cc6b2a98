"""The real processes the fault tests start, kill and restart: memex, the embedded Postgres, Redis."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

from tests.conftest import require
from tests.integration.test_serve import free_port, memex_env, wait_for


def short_data_dir() -> Path:
    """A data folder under /tmp: the embedded Postgres puts its socket there, and socket paths are short."""
    return Path(tempfile.mkdtemp(prefix="mxf-", dir="/tmp"))


def embedded_env(data_dir: Path, model_cache_dir: Path, **extra: str) -> dict[str, str]:
    """A memex environment on the embedded Postgres in data_dir (no MEMEX_DATABASE_URL)."""
    env = memex_env("unused", data_dir, model_cache_dir, **extra)
    del env["MEMEX_DATABASE_URL"]
    return env


def embedded_url(data_dir: Path) -> str:
    """The libpq URL of the embedded server of data_dir, over its socket (valid while it runs)."""
    return f"postgresql://postgres:@/memex?host={data_dir / 'pg'}"


def postgres_processes(data_dir: Path) -> list[psutil.Process]:
    """Postmasters serving data_dir/pg, and guards watching it."""
    pg_dir = str(data_dir / "pg")
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if pg_dir in cmdline and ("-D" in cmdline or any("embedded_guard" in part for part in cmdline)):
            found.append(proc)
    return found


def start_worker(env: dict[str, str], log: Path, *, concurrency: int = 2) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "memex", "worker", "--concurrency", str(concurrency)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )


def stop(process: subprocess.Popen[bytes]) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=90)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise


def kill_hard(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL: no handler, no atexit, no goodbye to the database."""
    os.kill(process.pid, signal.SIGKILL)
    process.wait()


class Redis:
    """A redis-server of the test's own, which it may stop and start again on the same port."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            require("redis-server", "install it with `apt-get install redis-server`")
        self.binary, self.workdir, self.port = str(binary), workdir, free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(
            [self.binary, *args, "--dir", str(self.workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

        def listening() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return True
            except OSError:
                return False

        wait_for(listening, timeout=20, what="redis-server to listen")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)


@contextmanager
def redis_server(workdir: Path) -> Iterator[Redis]:
    redis = Redis(workdir)
    redis.start()
    try:
        yield redis
    finally:
        redis.stop()


def no_memex_postgres_left(data_dir: Path) -> None:
    """Wait (the guard polls each second) until nothing serves or guards data_dir's Postgres."""
    wait_for(lambda: not postgres_processes(data_dir), timeout=60, what=f"the embedded Postgres of {data_dir} to stop")


def stop_database(folder: Path) -> None:
    """Stop the server that tests.deploy.parts.start_postgres started in `folder`, keeping its files."""
    from tests.deploy.parts import _pg_bin, _run_pg

    data = (folder / "server").resolve() / "data"
    _run_pg([str(_pg_bin() / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"])


def start_database(folder: Path, url: str) -> None:
    """Start it again, on the same port, as start_postgres did."""
    from sqlalchemy.engine import make_url

    from tests.deploy.parts import _pg_bin, _run_pg

    home = (folder / "server").resolve()
    port = make_url(url).port
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {home / 'sock'} -c max_connections=200 -c fsync=off"
    pg_ctl = str(_pg_bin() / "pg_ctl")
    _run_pg([pg_ctl, "-D", str(home / "data"), "-l", str(home / "postgres.log"), "-o", options, "-w", "start"])
