"""The load test's schedule: arrivals at the stated rate, ramps integrated, the mix spread evenly."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from memex.errors import InvalidInput
from memex.loadtest.report import percentile
from memex.loadtest.scenarios import CHAT, COMPLEX_SEARCH, SEARCH, kinds_for, scenario


def test_steady_sends_the_rate_times_the_duration_evenly_spaced() -> None:
    due = scenario("steady", duration=30).schedule()
    assert len(due) == 300
    gaps = {round(b - a, 9) for a, b in itertools.pairwise(due)}
    assert gaps == {0.1}


def test_peak_ramps_up_then_holds() -> None:
    peak = scenario("peak", duration=60)
    due = peak.schedule()
    # 5 → 50 per second over 15 s is (5 + 50) / 2 × 15 = 412.5 requests, then 45 s at 50.
    assert len(due) == pytest.approx(412.5 + 45 * 50, abs=1)
    assert due == sorted(due)
    first_second = sum(1 for t in due if t < 1)
    last_second = sum(1 for t in due if t >= 59)
    assert (first_second, last_second) == (pytest.approx(6, abs=1), 50)


def test_a_shorter_duration_scales_the_ramp() -> None:
    short = scenario("peak", duration=4)
    assert short.ramp == 1.0
    assert len(short.schedule()) == pytest.approx((5 + 50) / 2 * 1 + 3 * 50, abs=1)


def test_the_mix_is_spread_by_share() -> None:
    kinds = kinds_for(scenario("mix", duration=10))
    assert Counter(kinds) == {SEARCH: 60, COMPLEX_SEARCH: 30, CHAT: 10}
    assert CHAT in kinds[:10]  # spread out, not bunched at the end


def test_unknown_scenario_and_bad_duration_are_refused() -> None:
    with pytest.raises(InvalidInput, match="no scenario named 'flood'"):
        scenario("flood")
    with pytest.raises(InvalidInput, match="more than 0"):
        scenario("steady", duration=0)


def test_percentiles_interpolate_between_ranks() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile([3.0], 95) == 3.0
