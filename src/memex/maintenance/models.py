"""What a maintenance run looked at and did."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class HnswIndex:
    """An HNSW index, its size, and the size a fresh build for its table's live rows would have."""

    name: str
    table: str
    bytes: int
    live_rows: int
    dimension: int
    m: int
    expected_bytes: int

    @property
    def ratio(self) -> float:
        """How many times larger the index is than a fresh build would be."""
        return self.bytes / self.expected_bytes if self.expected_bytes else 0.0


@dataclass(frozen=True, slots=True)
class IndexAction:
    index: HnswIndex
    reindexed: bool
    reason: str
    bytes_after: int | None = None
    seconds: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self.index) | {
            "ratio": round(self.index.ratio, 2),
            "reindexed": self.reindexed,
            "reason": self.reason,
            "bytes_after": self.bytes_after,
            "seconds": None if self.seconds is None else round(self.seconds, 2),
        }


@dataclass(frozen=True, slots=True)
class MaintenanceReport:
    analyzed: list[str]
    analyze_seconds: float
    indexes: list[IndexAction]
    dropped_invalid: list[str]

    @property
    def reindexed(self) -> list[str]:
        return [a.index.name for a in self.indexes if a.reindexed]

    def as_dict(self) -> dict[str, Any]:
        return {
            "analyzed": self.analyzed,
            "analyze_seconds": round(self.analyze_seconds, 2),
            "indexes": [a.as_dict() for a in self.indexes],
            "reindexed": self.reindexed,
            "dropped_invalid": self.dropped_invalid,
        }
