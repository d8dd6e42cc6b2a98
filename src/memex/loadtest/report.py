"""What a run comes to: counts, latency percentiles, throughput and error rate per scenario."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass

from rich.table import Table

from memex.loadtest.runner import ScenarioRun


@dataclass(frozen=True)
class Latency:
    """Milliseconds from each successful request's scheduled time to the end of its answer."""

    p50: float | None
    p95: float | None
    p99: float | None
    max: float | None


@dataclass(frozen=True)
class Report:
    scenario: str
    description: str
    duration_s: float
    target_rate_per_s: float
    requests: int
    successes: int
    errors: int
    error_rate: float
    errors_by_kind: dict[str, int]
    requests_by_kind: dict[str, int]
    latency_ms: Latency
    throughput_per_s: float
    elapsed_s: float
    max_send_lag_ms: float  # how late the generator itself sent a request: large means the client was busy

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) of values, by linear interpolation between the closest ranks."""
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def summary(run: ScenarioRun) -> Report:
    """The report of one scenario run."""
    ok = [o.latency for o in run.outcomes if o.error is None]
    requests = len(run.outcomes)
    latency = Latency(None, None, None, None)
    if ok:
        latency = Latency(
            p50=_ms(percentile(ok, 50)), p95=_ms(percentile(ok, 95)), p99=_ms(percentile(ok, 99)), max=_ms(max(ok))
        )
    return Report(
        scenario=run.scenario.name,
        description=run.scenario.description,
        duration_s=round(run.scenario.duration, 3),
        target_rate_per_s=run.scenario.rate,
        requests=requests,
        successes=len(ok),
        errors=requests - len(ok),
        error_rate=round((requests - len(ok)) / requests, 4) if requests else 0.0,
        errors_by_kind=dict(sorted(run.errors.items())),
        requests_by_kind=dict(sorted(Counter(o.kind for o in run.outcomes).items())),
        latency_ms=latency,
        throughput_per_s=round(len(ok) / run.elapsed, 2) if run.elapsed > 0 else 0.0,
        elapsed_s=round(run.elapsed, 3),
        max_send_lag_ms=_ms(run.max_send_lag),
    )


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def table(reports: list[Report]) -> Table:
    """The reports side by side, one row per scenario."""
    t = Table(title="memex loadtest (latency from each request's scheduled time)")
    for column in ("scenario", "requests", "ok", "errors", "p50 ms", "p95 ms", "p99 ms", "max ms", "ok/s"):
        t.add_column(column, justify="left" if column == "scenario" else "right")
    for r in reports:
        lat = r.latency_ms
        t.add_row(
            r.scenario,
            str(r.requests),
            str(r.successes),
            f"{r.errors} ({r.error_rate * 100:.1f}%)",
            *("-" if v is None else f"{v:g}" for v in (lat.p50, lat.p95, lat.p99, lat.max)),
            f"{r.throughput_per_s:g}",
        )
    return t
