"""Rate limits on the expensive routes (search, chat, uploads, logins), in the `limits` library's sliding window
counter: two counters a window, so a request costs O(1) where a moving window keeps a timestamp per request.
And the back-off of password guesses from one client address at one account (`LoginBackoff`), in the same store.

Counters live in Redis when MEMEX_REDIS_URL is set, so every API instance shares them, and in process memory
otherwise. If Redis stops answering, each instance counts in its own memory until Redis is back (a warning is
logged, readiness shows Redis degraded): a rate limit protects the service, it must not become why it is down.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

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

_T = TypeVar("_T")

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
        self.login_backoff = LoginBackoff(self, settings)

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

    async def counter(self, op: Callable[[Storage], Awaitable[_T]]) -> _T:
        """Run `op` on the shared store, or on this process's memory while Redis is unavailable."""
        try:
            result = await op(self._limiter.storage)
            self.redis_error = None
            return result
        except Exception as exc:  # Redis down or unreachable: any error of its client
            if self.redis_error is None:
                log.warning("Redis is unavailable: rate limits are counted per instance", error=str(exc))
            self.redis_error = str(exc) or type(exc).__name__
            return await op(self._fallback.storage)


class LoginBackoff:
    """Password guesses at one account from one client address: the first MEMEX_LOGIN_MAX_ATTEMPTS are free;
    from then on each attempt makes the next one from that address wait, 30 s and doubling up to
    MEMEX_LOGIN_LOCKOUT_MINUTES. A login that succeeds clears it. Nothing is ever locked: the account's owner,
    from any other address, logs in as usual while a stranger is held back. Attempts are counted before the
    password is checked, so guesses sent in parallel see each other; they are forgotten a day after the first."""

    FIRST_WAIT_SECONDS = 30
    REMEMBER_SECONDS = 24 * 3600

    def __init__(self, limits: RateLimits, settings: Settings) -> None:
        self._limits = limits
        self.free_attempts = settings.login_max_attempts
        self.longest_wait = settings.login_lockout_minutes * 60

    def wait_seconds(self, attempt: int) -> int:
        """How long attempt number `attempt` (counted from 1) makes the next one wait; 0 for the free ones."""
        if attempt < self.free_attempts:
            return 0
        doublings = min(attempt - self.free_attempts, 32)
        return min(self.longest_wait, self.FIRST_WAIT_SECONDS << doublings)

    @staticmethod
    def _keys(who: str) -> tuple[str, str]:
        # Hashed: the store never holds an email, and any text makes a well-formed key.
        digest = hashlib.sha256(who.encode()).hexdigest()[:32]
        return f"login-attempts/{digest}", f"login-wait/{digest}"

    async def attempt(self, who: str) -> int:
        """Count an attempt of `who` (account and address) and return its number (from 1, since the last success);
        raises RateLimited while `who` must wait."""
        attempts, wait = self._keys(who)
        left = await self._limits.counter(lambda s: _seconds_left(s, wait))
        if left:
            raise _backoff(left)
        count = await self._limits.counter(lambda s: s.incr(attempts, self.REMEMBER_SECONDS))
        seconds = self.wait_seconds(count)
        if seconds:
            # The store's counter is atomic: of attempts racing past the check above, one sets the wait.
            taken = await self._limits.counter(lambda s: s.incr(wait, seconds))
            if taken > 1:
                raise _backoff(await self._limits.counter(lambda s: _seconds_left(s, wait)) or 1)
        return count

    async def succeeded(self, who: str) -> None:
        attempts, wait = self._keys(who)
        await self._limits.counter(lambda s: s.clear(attempts))
        await self._limits.counter(lambda s: s.clear(wait))


async def _seconds_left(storage: Storage, key: str) -> int:
    if not await storage.get(key):
        return 0
    return max(0, math.ceil(await storage.get_expiry(key) - time.time()))


def _backoff(seconds: int) -> RateLimited:
    seconds = max(1, seconds)
    minutes = math.ceil(seconds / 60)
    when = f"{seconds} s" if seconds < 120 else f"{minutes} minutes"
    return RateLimited(
        f"too many failed logins for this account from your address: try again in {when}", retry_after=seconds
    )


def _window(item: RateLimitItem) -> str:
    unit = item.GRANULARITY.name
    return unit if item.multiples == 1 else f"{item.multiples} {unit}s"
