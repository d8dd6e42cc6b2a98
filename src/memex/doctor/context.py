"""What every check is given: the settings, a way into the database (when it answers) and the thresholds."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from memex.accounts.service import is_loopback
from memex.db import store as db_store
from memex.db.engine import create_engine
from memex.errors import MemexError
from memex.runtime import Runtime, resolve_database_url
from memex.settings import Settings

GIB = 1024**3


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Where a reading becomes a finding; the defaults are what the README documents."""

    min_free_bytes: int = 2 * GIB
    min_free_ratio: float = 0.05
    job_running_seconds: float = 3600
    job_waiting_seconds: float = 1800
    backup_max_age_hours: float = 48
    backup_stale_hours: float = 7 * 24
    restore_drill_days: float = 35
    certificate_warn_days: int = 21
    certificate_critical_days: int = 7
    probe_timeout_seconds: float = 5


@dataclass
class Context:
    settings: Settings
    engine: AsyncEngine | None
    database_url: str | None
    database_error: str | None = None
    thresholds: Thresholds = field(default_factory=Thresholds)

    @property
    def exposed(self) -> bool:
        """Whether other machines can reach the server: a non-loopback listen address or public URL."""
        settings = self.settings
        public = urlsplit(settings.public_url).hostname if settings.public_url else None
        return not is_loopback(settings.host) or (public is not None and not is_loopback(public))

    @property
    def local_database(self) -> bool:
        """Whether the database runs on this machine (embedded, a Unix socket or a loopback address)."""
        if self.settings.embedded or self.database_url is None:
            return True
        url = make_url(self.database_url)
        host = url.host or str(url.query.get("host") or "")
        if not host or host.startswith("/"):
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return host == "localhost"

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir

    @property
    def backup_dir(self) -> Path:
        """MEMEX_BACKUP_DIR, or where backups go without it (a folder in the data folder)."""
        found = getattr(self.settings, "backup_dir", None)
        return Path(found) if found else self.data_dir / "backups"

    def engine_or_fail(self) -> AsyncEngine:
        assert self.engine is not None, "database checks only run when the database answers"
        return self.engine


def from_runtime(runtime: Runtime, *, thresholds: Thresholds | None = None) -> Context:
    """The context of a running server: its settings and its engine."""
    return Context(
        settings=runtime.settings,
        engine=runtime.engine,
        database_url=runtime.database_url,
        thresholds=thresholds or Thresholds(),
    )


@asynccontextmanager
async def opened(settings: Settings, *, thresholds: Thresholds | None = None) -> AsyncIterator[Context]:
    """A context for the CLI: connects without migrating or checking the model (those are findings here)."""
    limits = thresholds or Thresholds()
    try:
        url, _embedded = await asyncio.to_thread(resolve_database_url, settings)
    except MemexError as exc:
        yield Context(settings=settings, engine=None, database_url=None, database_error=exc.message, thresholds=limits)
        return
    engine = create_engine(url, pool_size=4)
    try:
        try:
            async with asyncio.timeout(limits.probe_timeout_seconds * 2), engine.connect() as conn:
                await db_store.ping(conn)
        except (TimeoutError, sa.exc.DBAPIError, OSError) as exc:
            reason = str(getattr(exc, "orig", None) or exc).strip() or type(exc).__name__
            yield Context(settings=settings, engine=None, database_url=url, database_error=reason, thresholds=limits)
            return
        yield Context(settings=settings, engine=engine, database_url=url, thresholds=limits)
    finally:
        await engine.dispose()
