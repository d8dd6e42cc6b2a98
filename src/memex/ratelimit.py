"""Rate limits on the expensive routes (search, chat, uploads, logins), in the `limits` library's sliding window
counter: two counters a window, so a request costs O(1) where a moving window keeps a timestamp per request.

Counters live in Redis when MEMEX_REDIS_URL is set, so every API instance shares them, and in process memory
otherwise. If Redis stops answering, each instance counts in its own memory until Redis is back (a warning is
logged, readiness shows Redis degraded): a rate limit protects the service, it must not become why it is down.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

import redis.asyncio
import structlog
from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from memex.errors import RateLimited
from memex.kbs.access import Actor
from memex.metrics import Metrics
from memex.settings import Settings

log = structlog.get_logger("memex.ratelimit")

Bucket = Literal["search", "chat", "upload", "login"]
_WHAT = {"search": "searches", "chat": "chat questions", "upload": "uploads", "login": "login attempts"}


def parse_limits(text: str) -> list[RateLimitItem]:
    """`120/minute`, or several windows for a burst and a sustained rate: `10/second;120/minute`.
    An empty text or `0` means no limit."""
    if text.strip() in ("", "0"):
        return []
    return list(parse_many(text))


def caller(actor: Actor) -> str:
    """Whose budget a request spends: its API key's, else its user's (the local CLI is never limited here)."""
    if actor.api_key_id is not None:
        return f"key:{actor.api_key_id}"
    return f"user:{actor.user_id or 'local'}"


@dataclass(frozen=True, slots=True)
class Allowance:
    """What a caller has left in the current window: sent as RateLimit-* headers."""

    limit: int
    remaining: int
    reset_seconds: int

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_seconds),
        }


class RateLimits:
    """The limits of one process, built from the settings once."""

    def __init__(self, settings: Settings, *, metrics: Metrics | None = None) -> None:
        self._metrics = metrics
        self._items: dict[Bucket, list[RateLimitItem]] = {
            "search": parse_limits(settings.rate_limit_search),
            "chat": parse_limits(settings.rate_limit_chat),
            "upload": parse_limits(settings.rate_limit_upload),
            "login": parse_limits(settings.rate_limit_login),
        }
        storage: Storage
        # Our own pool, so that `close` can release its connections (the storage has no way to).
        self._pool: redis.asyncio.ConnectionPool | None = None
        if settings.redis_url is not None:
            url = settings.redis_url.get_secret_value()
            self._pool = redis.asyncio.ConnectionPool.from_url(url, socket_connect_timeout=2, socket_timeout=2)
            storage = RedisStorage(
                f"async+{url}",
                implementation="redispy",
                key_prefix="memex",
                connection_pool=self._pool,  # type: ignore[arg-type]  # typed as scalars, passed to redis as is
            )
        else:
            storage = MemoryStorage()
        self._limiter = SlidingWindowCounterRateLimiter(storage)
        self._fallback = SlidingWindowCounterRateLimiter(MemoryStorage())
        self.redis_error: str | None = None

    async def ping(self) -> str:
        """Readiness: whether Redis answers (raises when it does not)."""
        if self._pool is None:
            return "not configured: rate limits are counted per instance"
        client = redis.asyncio.Redis(connection_pool=self._pool)
        await client.ping()
        return "reachable: rate limits are shared"

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()

    async def hit(self, bucket: Bucket, who: str) -> Allowance | None:
        """Count one request of `who` in every window of the bucket; raises RateLimited past any of them.
        Returns what is left in the tightest window, or None when the bucket has no limit."""
        tightest: Allowance | None = None
        for item in self._items[bucket]:
            allowed, allowance = await self._hit_one(item, bucket, who)
            if not allowed:
                if self._metrics is not None:
                    self._metrics.limited(bucket)
                raise RateLimited(
                    f"too many {_WHAT[bucket]}: the limit is {item.amount} per {_window(item)}; "
                    f"try again in {allowance.reset_seconds} s",
                    retry_after=allowance.reset_seconds,
                    headers=allowance.headers(),
                )
            if tightest is None or allowance.remaining < tightest.remaining:
                tightest = allowance
        return tightest

    async def _hit_one(self, item: RateLimitItem, bucket: Bucket, who: str) -> tuple[bool, Allowance]:
        try:
            allowed = await self._limiter.hit(item, bucket, who)
            stats = await self._limiter.get_window_stats(item, bucket, who)
            self.redis_error = None
        except Exception as exc:  # Redis down or unreachable: any error of its client
            if self.redis_error is None:
                log.warning("Redis is unavailable: rate limits are counted per instance", error=str(exc))
            self.redis_error = str(exc) or type(exc).__name__
            allowed = await self._fallback.hit(item, bucket, who)
            stats = await self._fallback.get_window_stats(item, bucket, who)
        return allowed, Allowance(
            limit=item.amount,
            remaining=max(0, stats.remaining),
            reset_seconds=max(1, int(stats.reset_time - time.time() + 0.999)),
        )


def _window(item: RateLimitItem) -> str:
    unit = item.GRANULARITY.name
    return unit if item.multiples == 1 else f"{item.multiples} {unit}s"
