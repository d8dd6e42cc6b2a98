"""The load scenarios: how many requests of which kind, at what rate, for how long."""

from __future__ import annotations

import math
from dataclasses import dataclass

from memex.errors import InvalidInput

SEARCH = "search"
COMPLEX_SEARCH = "complex_search"
CHAT = "chat"
UPLOAD = "upload"


@dataclass(frozen=True)
class Scenario:
    """A request rate that ramps linearly from `start_rate` to `rate` over `ramp` seconds, then holds."""

    name: str
    description: str
    rate: float  # requests per second once ramped up
    duration: float  # seconds, ramp included
    mix: tuple[tuple[str, float], ...]  # request kind and its share of the requests
    start_rate: float | None = None
    ramp: float = 0.0
    file_kb: tuple[int, int] = (1, 64)  # sizes of uploaded files, in KB

    def with_duration(self, seconds: float) -> Scenario:
        """The same scenario over `seconds`, its ramp scaled in proportion."""
        ramp = self.ramp * seconds / self.duration if self.duration else 0.0
        return Scenario(
            name=self.name,
            description=self.description,
            rate=self.rate,
            duration=seconds,
            mix=self.mix,
            start_rate=self.start_rate,
            ramp=ramp,
            file_kb=self.file_kb,
        )

    def schedule(self) -> list[float]:
        """When each request is due, in seconds from the start: arrivals evenly spaced at the current rate."""
        start = self.rate if self.start_rate is None else self.start_rate
        times: list[float] = []
        n = 0
        while True:
            t = self._time_of(n + 0.0, start)
            if t >= self.duration:
                return times
            times.append(t)
            n += 1

    def _time_of(self, count: float, start: float) -> float:
        # Requests due by time t are the integral of the rate: start*t + (rate-start)*t²/(2*ramp) in the ramp.
        ramp = min(self.ramp, self.duration)
        in_ramp = (start + self.rate) / 2 * ramp
        if count >= in_ramp or ramp == 0:
            return ramp + (count - in_ramp) / self.rate
        slope = (self.rate - start) / ramp
        if slope == 0:
            return count / start
        return (-start + math.sqrt(start * start + 2 * slope * count)) / slope

    def expected_requests(self) -> int:
        return len(self.schedule())


SCENARIOS: dict[str, Scenario] = {
    "steady": Scenario(
        name="steady",
        description="a steady 10 searches a second",
        rate=10,
        duration=60,
        mix=((SEARCH, 1.0),),
    ),
    "peak": Scenario(
        name="peak",
        description="a peak of 50 searches a second, ramped up from 5 over the first quarter",
        rate=50,
        start_rate=5,
        ramp=15,
        duration=60,
        mix=((SEARCH, 1.0),),
    ),
    "ingest": Scenario(
        name="ingest",
        description="60 uploads a minute of text files between 1 and 64 KB",
        rate=1,
        duration=60,
        mix=((UPLOAD, 1.0),),
        file_kb=(1, 64),
    ),
    "mix": Scenario(
        name="mix",
        description="10 requests a second: 60% short searches, 30% long questions, 10% streamed chat",
        rate=10,
        duration=60,
        mix=((SEARCH, 0.6), (COMPLEX_SEARCH, 0.3), (CHAT, 0.1)),
    ),
}


def scenario(name: str, *, duration: float | None = None) -> Scenario:
    """A scenario by name, over `duration` seconds instead of its own when given."""
    found = SCENARIOS.get(name)
    if found is None:
        raise InvalidInput(f"no scenario named {name!r}: choose from {', '.join(SCENARIOS)}")
    if duration is not None:
        if duration <= 0:
            raise InvalidInput("--duration must be more than 0 seconds")
        found = found.with_duration(duration)
    return found


def kinds_for(s: Scenario) -> list[str]:
    """The kind of each scheduled request: the mix spread evenly over the run (largest remainder first)."""
    due = s.schedule()
    kinds: list[str] = []
    credit = {kind: 0.0 for kind, _ in s.mix}
    for _ in due:
        for kind, share in s.mix:
            credit[kind] += share
        chosen = max(credit, key=lambda k: credit[k])
        credit[chosen] -= 1.0
        kinds.append(chosen)
    return kinds
