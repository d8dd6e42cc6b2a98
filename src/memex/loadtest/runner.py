"""The open-loop scheduler: every request starts at its due time, and its latency counts from that time."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx

from memex.errors import InvalidInput, ServiceUnavailable
from memex.loadtest.requests import RequestFailed, send
from memex.loadtest.scenarios import UPLOAD, Scenario, kinds_for

# A request still unanswered after this long counts as an error (and stops counting towards the run's end).
REQUEST_TIMEOUT_SECONDS = 60.0
LOADTEST_KB = "memex-loadtest"


@dataclass
class Outcome:
    kind: str
    latency: float  # seconds from the scheduled time to the end of the answer
    error: str | None


@dataclass
class ScenarioRun:
    scenario: Scenario
    outcomes: list[Outcome] = field(default_factory=list)
    elapsed: float = 0.0  # from the first due time to the last answer
    max_send_lag: float = 0.0  # how late the generator itself started a request: a busy client machine

    @property
    def errors(self) -> Counter[str]:
        return Counter(o.error for o in self.outcomes if o.error is not None)


def _limits(scenario: Scenario) -> httpx.Limits:
    # Enough connections for every request that could be in flight at the peak rate, so that the client's pool
    # never becomes a hidden queue of its own.
    return httpx.Limits(
        max_connections=int(scenario.rate * REQUEST_TIMEOUT_SECONDS) + 10, max_keepalive_connections=200
    )


async def writable_kb(client: httpx.AsyncClient) -> str:
    """A knowledge base the key may upload to: one named memex-loadtest, created if there is none."""
    try:
        listed = await client.get("/api/kbs")
    except httpx.TransportError as exc:
        raise ServiceUnavailable(f"cannot reach {client.base_url}: {exc or type(exc).__name__}") from exc
    if listed.status_code >= 400:
        raise ServiceUnavailable(
            f"the server refused to list knowledge bases: HTTP {listed.status_code} {_detail(listed)}"
        )
    for kb in listed.json():
        if kb["name"] == LOADTEST_KB and kb.get("role") in ("owner", "editor"):
            return str(kb["id"])
    created = await client.post("/api/kbs", json={"name": LOADTEST_KB, "description": "Uploads of memex loadtest"})
    if created.status_code >= 400:
        raise ServiceUnavailable(
            f"cannot create the {LOADTEST_KB} knowledge base for uploads: HTTP {created.status_code} "
            f"{_detail(created)} (the ingest scenario needs a key with the write scope)"
        )
    return str(created.json()["id"])


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail", ""))
    except ValueError:
        return response.text[:200]


async def run_scenario(url: str, api_key: str, scenario: Scenario, *, seed: int = 1) -> ScenarioRun:
    """Send the scenario's requests at their due times and collect what became of each."""
    rng = random.Random(seed)
    due = scenario.schedule()
    kinds = kinds_for(scenario)
    run = ScenarioRun(scenario=scenario)
    timeout = httpx.Timeout(REQUEST_TIMEOUT_SECONDS, connect=10.0)
    headers = {"Authorization": f"Bearer {api_key}", "User-Agent": "memex-loadtest"}
    try:
        async with httpx.AsyncClient(
            base_url=url, headers=headers, timeout=timeout, limits=_limits(scenario), follow_redirects=False
        ) as client:
            kb_id = await writable_kb(client) if UPLOAD in kinds else None
            start = time.perf_counter() + 0.05

            async def one(at: float, kind: str) -> None:
                await asyncio.sleep(max(0.0, start + at - time.perf_counter()))
                run.max_send_lag = max(run.max_send_lag, time.perf_counter() - (start + at))
                error: str | None = None
                try:
                    await send(client, kind, rng=rng, kb_id=kb_id, file_kb=scenario.file_kb)
                except RequestFailed as exc:
                    error = str(exc)
                except httpx.TimeoutException:
                    error = "timeout"
                except httpx.TransportError as exc:
                    error = type(exc).__name__
                run.outcomes.append(Outcome(kind=kind, latency=time.perf_counter() - (start + at), error=error))

            await asyncio.gather(*(one(at, kind) for at, kind in zip(due, kinds, strict=True)))
            run.elapsed = time.perf_counter() - start
    except httpx.InvalidURL as exc:
        raise InvalidInput(f"not a usable URL: {url} ({exc})") from exc
    return run
