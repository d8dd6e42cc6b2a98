"""What backup services hand back, and how they report progress."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Protocol


class Progress(Protocol):
    """Where a long step reports how far it got (a progress bar on the CLI; nothing in a job)."""

    def start(self, description: str, total: int | None) -> None: ...

    def advance(self, amount: int) -> None: ...


class NoProgress:
    def start(self, description: str, total: int | None) -> None:
        pass

    def advance(self, amount: int) -> None:
        pass


@dataclass(frozen=True)
class Created:
    path: Path
    backup_id: str
    size: int
    dump_bytes: int
    dump_sha256: str
    started_at: datetime
    finished_at: datetime
    schema_revision: str | None
    tables: dict[str, int]
    samples: int
    encrypted: bool

    def as_dict(self) -> dict[str, object]:
        return {
            "path": str(self.path),
            "backup_id": self.backup_id,
            "bytes": self.size,
            "dump_bytes": self.dump_bytes,
            "dump_sha256": self.dump_sha256,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
            "seconds": round((self.finished_at - self.started_at).total_seconds(), 3),
            "schema_revision": self.schema_revision,
            "rows": sum(self.tables.values()),
            "tables": self.tables,
            "samples": self.samples,
            "encrypted": self.encrypted,
        }


@dataclass
class Check:
    name: str
    ok: bool
    detail: str

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


@dataclass
class Verification:
    """The outcome of `backup verify`: every check made, and the first failure's reason."""

    path: Path
    checks: list[Check] = field(default_factory=list)
    backup_id: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def reason(self) -> str | None:
        return next((c.detail for c in self.checks if not c.ok), None)

    def as_dict(self) -> dict[str, object]:
        return {
            "path": str(self.path),
            "ok": self.ok,
            "reason": self.reason,
            "backup_id": self.backup_id,
            "seconds": round(self.seconds, 3),
            "checks": [c.as_dict() for c in self.checks],
        }


def memex_version() -> str:
    try:
        return version("memex")
    except PackageNotFoundError:
        return "unknown"
