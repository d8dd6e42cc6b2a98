"""Real deployment parts for tests: a standalone PostgreSQL on TCP, nginx from deploy/nginx, certificates.

`start_postgres(folder)` runs the embedded server's own binaries (pgserver ships initdb, postgres and pg_ctl) as a
separate server listening on 127.0.0.1 with password authentication, the way a managed PostgreSQL is reached:
by `MEMEX_DATABASE_URL` only. `stop_postgres(folder)` stops it (it is also stopped when the process exits).

`start_nginx(...)` renders deploy/nginx/nginx.conf.template exactly as the nginx image does for compose (its
`${NGINX_*}` variables only), checks it with `nginx -t` and runs it in the foreground.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import ipaddress
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
NGINX_TEMPLATE = DEPLOY / "nginx" / "nginx.conf.template"

_SYSTEM_USER = "pgserver"  # the user pgserver itself runs Postgres as when started by root
_running: dict[Path, Path] = {}  # folder -> pg_ctl binary, for stop_postgres and the exit hook


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, *, timeout: float, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if process is not None and process.poll() is not None:
                raise AssertionError(
                    f"the process exited with {process.returncode} before listening on {port}"
                ) from None
            if time.monotonic() > deadline:
                raise AssertionError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s") from None
            time.sleep(0.05)


# PostgreSQL


def _pg_bin() -> Path:
    import pgserver._commands

    return Path(pgserver._commands.POSTGRES_BIN_PATH)


def _as_root() -> bool:
    return os.geteuid() == 0


def _run_pg(args: Sequence[str], **kwargs: object) -> None:
    extra: dict[str, object] = {"user": _SYSTEM_USER} if _as_root() else {}
    done = subprocess.run(list(args), capture_output=True, text=True, check=False, **extra, **kwargs)  # type: ignore[call-overload]
    if done.returncode != 0:
        raise AssertionError(f"{Path(args[0]).name} failed ({done.returncode}): {done.stderr.strip()}")


def start_postgres(folder: Path, *, database: str = "memex", user: str = "memex") -> str:
    """Start a PostgreSQL 16 + pgvector server in `folder` on a free loopback port; return the URL of `database`,
    owned by `user`, who logs in with a password over TCP (scram-sha-256) and is not a superuser."""
    bin_dir = _pg_bin()
    folder.mkdir(parents=True, exist_ok=True)
    # The server's files live in a short folder of their own under /tmp (a Unix socket path is limited to about
    # 100 bytes, and pytest's folders are private to the user running the tests); `folder` points at it.
    home = Path(tempfile.mkdtemp(prefix="memex-pg-", dir="/tmp"))
    (folder / "server").symlink_to(home)
    data, sockets = home / "data", home / "sock"
    sockets.mkdir()
    if _as_root():  # initdb refuses root: run as pgserver's own system user, as pgserver does
        from pgserver.utils import ensure_prefix_permissions, ensure_user_exists

        ensure_user_exists(_SYSTEM_USER)
        ensure_prefix_permissions(bin_dir)
        shutil.chown(home, _SYSTEM_USER, _SYSTEM_USER)
        shutil.chown(sockets, _SYSTEM_USER, _SYSTEM_USER)
    admin_password, password = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    pwfile = home / "pwfile"
    pwfile.write_text(admin_password + "\n")
    if _as_root():
        shutil.chown(pwfile, _SYSTEM_USER, _SYSTEM_USER)
    _run_pg(
        [
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            f"--pwfile={pwfile}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
        ]
    )
    pwfile.unlink()
    port = free_port()
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {sockets} -c max_connections=200 -c fsync=off"
    _run_pg([str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(home / "postgres.log"), "-o", options, "-w", "start"])
    _running[folder] = bin_dir / "pg_ctl"
    import psycopg
    from psycopg import sql

    admin = f"postgresql://postgres:{admin_password}@127.0.0.1:{port}/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(user), sql.Literal(password)))
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(database), sql.Identifier(user)))
    # pgvector is not a trusted extension: the operator (here: the superuser) creates it once, as on managed servers.
    with psycopg.connect(admin.rsplit("/", 1)[0] + f"/{database}", autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    return f"postgresql://{user}:{password}@127.0.0.1:{port}/{database}"


def stop_postgres(folder: Path) -> None:
    """Stop the server started in `folder` and delete its files."""
    pg_ctl = _running.pop(folder, None)
    if pg_ctl is not None:
        home = (folder / "server").resolve()
        if (home / "data" / "postmaster.pid").exists():  # a test may have stopped it already
            _run_pg([str(pg_ctl), "-D", str(home / "data"), "-m", "fast", "-w", "stop"])
        shutil.rmtree(home, ignore_errors=True)


@atexit.register
def _stop_all() -> None:
    for folder in list(_running):
        with contextlib.suppress(Exception):
            stop_postgres(folder)


# Certificates


def self_signed_certificate(folder: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """A self-signed certificate for `host` (an IP address or a DNS name) and its key, as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    try:
        alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        alt = x509.DNSName(host)
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([alt]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)
    return cert_path, key_path


# nginx

_VARIABLE = re.compile(r"\$\{(NGINX_[A-Z_]+)\}")


def render_template(text: str, values: Mapping[str, str]) -> str:
    """What the nginx image's envsubst step does with the defined `NGINX_*` variables; every one must be given."""
    missing = sorted({name for name in _VARIABLE.findall(text) if name not in values})
    if missing:
        raise AssertionError(f"the nginx template needs {', '.join(missing)}")
    return _VARIABLE.sub(lambda m: values[m.group(1)], text)


def nginx_values(
    *,
    upstreams: Sequence[str],
    cert: Path,
    key: Path,
    run_dir: Path,
    http_port: int = 80,
    https_port: int = 443,
    max_upload_mb: int = 25,
    server_name: str = "_",
) -> dict[str, str]:
    """The template's variables: `upstreams` are host:port of the API instances."""
    return {
        "NGINX_UPSTREAM_SERVERS": " ".join(f"server {u} max_fails=1 fail_timeout=10s;" for u in upstreams),
        "NGINX_SERVER_NAME": server_name,
        "NGINX_HTTP_PORT": str(http_port),
        "NGINX_HTTPS_PORT": str(https_port),
        "NGINX_CERT": str(cert),
        "NGINX_CERT_KEY": str(key),
        "NGINX_MAX_UPLOAD_MB": str(max_upload_mb),
        "NGINX_RUN_DIR": str(run_dir),
    }


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).exists()), None
    )


def write_nginx_config(folder: Path, values: Mapping[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    conf = folder / "nginx.conf"
    conf.write_text(render_template(NGINX_TEMPLATE.read_text(), values))
    return conf


def nginx_test(binary: str, conf: Path) -> subprocess.CompletedProcess[str]:
    """`nginx -t` on a rendered configuration."""
    return subprocess.run(
        [binary, "-t", "-p", str(conf.parent), "-c", str(conf), "-e", "stderr"],
        capture_output=True,
        text=True,
        check=False,
    )


@dataclass
class Nginx:
    process: subprocess.Popen[bytes]
    http_port: int
    https_port: int
    folder: Path

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    def log(self) -> str:
        return (self.folder / "nginx.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)  # graceful: let requests in flight finish
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_nginx(
    binary: str, folder: Path, *, upstreams: Sequence[str], cert: Path, key: Path, max_upload_mb: int = 25
) -> Nginx:
    """Run nginx (in the foreground, as a child) with the deploy template in front of `upstreams`."""
    http_port, https_port = free_port(), free_port()
    run_dir = folder / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    values = nginx_values(
        upstreams=upstreams,
        cert=cert,
        key=key,
        run_dir=run_dir,
        http_port=http_port,
        https_port=https_port,
        max_upload_mb=max_upload_mb,
    )
    conf = write_nginx_config(folder, values)
    checked = nginx_test(binary, conf)
    if checked.returncode != 0:
        raise AssertionError(f"nginx -t failed:\n{checked.stderr}")
    with open(folder / "nginx.log", "wb") as out:
        process = subprocess.Popen(
            [binary, "-p", str(folder), "-c", str(conf), "-e", "stderr", "-g", "daemon off;"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    nginx = Nginx(process=process, http_port=http_port, https_port=https_port, folder=folder)
    try:
        wait_for_port(https_port, timeout=20, process=process)
        wait_for_port(http_port, timeout=20, process=process)
    except AssertionError:
        nginx.stop()
        raise AssertionError(f"nginx did not start:\n{nginx.log()}") from None
    return nginx


# Prometheus


@dataclass
class Prometheus:
    process: subprocess.Popen[bytes]
    url: str
    folder: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_prometheus(
    folder: Path, targets: Sequence[str], *, rules: Path = DEPLOY / "prometheus" / "alerts.yml"
) -> Prometheus:
    """Debian's Prometheus scraping `targets` (job `memex`) every second, with the deploy alert rules loaded."""
    binary = shutil.which("prometheus")
    if binary is None:
        from tests.conftest import require

        require("prometheus", "install Debian's prometheus package")
    assert binary is not None
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "scrape_configs": [{"job_name": "memex", "static_configs": [{"targets": list(targets)}]}],
    }
    import json

    (folder / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
    port = free_port()
    with open(folder / "prometheus.log", "wb") as out:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={folder / 'prometheus.yml'}",
                f"--storage.tsdb.path={folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    wait_for_port(port, timeout=60, process=process)
    return Prometheus(process=process, url=f"http://127.0.0.1:{port}", folder=folder)
