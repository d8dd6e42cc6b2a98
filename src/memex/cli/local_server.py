"""Finding a `memex serve` running on this machine, so a CLI search can ask it rather than open the database and
load the embedding model itself (seconds, where the server answers in milliseconds).

While it listens, `memex serve` keeps `server.json` in the data dir: its loopback URL, its pid, whether it requires
authentication, and which database it serves (a hash: the URL may hold a password). The file holds no secret; a
server that requires authentication is asked only with the caller's own API key (MEMEX_API_KEY).

The CLI believes the file only when this user owns it and no one else may write it (checked on the open file, so it
cannot be swapped in between), and only for a loopback URL: a file another user could write could send queries,
and the API key, elsewhere. Anything wrong (a stale file, a dead pid, another database) means "no server here".
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
import stat
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from memex.settings import Settings

MARKER = "server.json"


@dataclass(frozen=True, slots=True)
class LocalServer:
    url: str
    auth: bool


def database_identity(settings: Settings) -> str:
    """Which database a process uses, without its credentials: the embedded one lives in the data dir itself."""
    if settings.database_url is None:
        return "embedded"
    return hashlib.sha256(settings.database_url.get_secret_value().encode()).hexdigest()


def loopback_url(host: str, port: int) -> str | None:
    """The URL this machine reaches a server listening on HOST at; None when it listens on another address only."""
    if host in ("", "0.0.0.0", "localhost"):
        return f"http://127.0.0.1:{port}"
    if host == "::":
        return f"http://[::1]:{port}"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if not address.is_loopback:
        return None
    return f"http://[{address}]:{port}" if address.version == 6 else f"http://{address}:{port}"


def write_marker(settings: Settings, *, url: str) -> None:
    """Say where this server listens (atomically, readable by this user only)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    body = {"url": url, "pid": os.getpid(), "auth": settings.auth, "database": database_identity(settings)}
    path = settings.data_dir / MARKER
    partial = path.with_name(f".{MARKER}.{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        partial.unlink()
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(body, out)
    os.replace(partial, path)


def remove_marker(settings: Settings) -> None:
    """Take the file away on the way out, unless another server has written its own since."""
    path = settings.data_dir / MARKER
    found = _read(path)
    if found is not None and found.get("pid") == os.getpid():
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def find(settings: Settings) -> LocalServer | None:
    """The server running here on this process's database, if its file can be trusted; otherwise None."""
    found = _read(settings.data_dir / MARKER)
    if found is None or found.get("database") != database_identity(settings):
        return None
    url, pid, auth = found.get("url"), found.get("pid"), found.get("auth")
    if not isinstance(url, str) or not isinstance(pid, int) or not isinstance(auth, bool) or not _is_loopback(url):
        return None
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):  # gone, or the pid now belongs to someone else's process
        return None
    return LocalServer(url=url, auth=auth)


def _read(path: os.PathLike[str]) -> dict[str, object] | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o022:
            return None
        try:
            body = json.loads(file.read(4096))
        except ValueError:
            return None
    return body if isinstance(body, dict) else None


def _is_loopback(url: str) -> bool:
    try:
        parts = urlsplit(url)
        return (
            parts.scheme == "http" and parts.hostname is not None and ipaddress.ip_address(parts.hostname).is_loopback
        )
    except ValueError:
        return False
