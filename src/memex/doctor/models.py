"""What the doctor reports: findings, each with a severity, a check id, what was found and how to fix it."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class Severity(enum.StrEnum):
    critical = "critical"
    high = "high"
    medium = "medium"
    low = "low"
    info = "info"

    @property
    def rank(self) -> int:
        """0 for critical up to 4 for info: sorts the worst first."""
        return list(Severity).index(self)


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing the doctor found. `fix` is empty for findings that need nothing done."""

    severity: Severity
    check: str
    found: str
    fix: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "severity": self.severity.value,
            "check": self.check,
            "found": self.found,
            "fix": self.fix,
            "data": self.data,
        }


@dataclass(frozen=True, slots=True)
class ManualItem:
    """A go-live item that software cannot check: a person must."""

    check: str
    item: str
    how: str

    def as_dict(self) -> dict[str, str]:
        return {"severity": "manual", "check": self.check, "item": self.item, "how": self.how}


@dataclass(frozen=True, slots=True)
class Report:
    findings: list[Finding]
    manual: list[ManualItem]
    duration_ms: float

    @property
    def worst(self) -> Severity | None:
        return min((f.severity for f in self.findings), key=lambda s: s.rank, default=None)

    @property
    def blocking(self) -> bool:
        """Whether a high or critical finding is present (what `--strict` fails on)."""
        return any(f.severity in (Severity.critical, Severity.high) for f in self.findings)

    def summary(self) -> dict[str, Any]:
        counts = {s.value: sum(1 for f in self.findings if f.severity is s) for s in Severity}
        worst = self.worst
        return counts | {
            "manual": len(self.manual),
            "worst": worst.value if worst else None,
            "ok": not self.blocking,
            "duration_ms": round(self.duration_ms, 1),
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "findings": [f.as_dict() for f in self.findings],
            "manual": [m.as_dict() for m in self.manual],
            "summary": self.summary(),
        }
