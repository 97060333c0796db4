"""Per-region SES rate limiting shared by every worker process through Redis.

One token bucket per region, updated atomically by a Lua script on Redis' clock. The
bucket holds at most a fiftieth of a second of tokens and refills slightly under the
region's rate, so the sends of all workers together stay under the limit in every
one-second window (the stand-in and SES check exactly that). Tokens are fetched in small
batches and handed straight to the waiting senders, so none is held back and spent late.
Transactional mail goes first: while a transactional sender waits anywhere,
marketing takes nothing from that region.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from dataclasses import dataclass, field

from redis.asyncio import Redis

HEADROOM = 0.98  # refill under the limit: room for a few ms between a grant and SES
BURST_SECONDS = 0.01
TX_DEMAND_TTL_MS = 250
PRIORITY = {"transactional": 0}
DEFAULT_PRIORITY = 1

_TAKE = """
local key = KEYS[1]
local txkey = KEYS[2]
local rate = tonumber(ARGV[1])
local want = tonumber(ARGV[2])
local priority = tonumber(ARGV[3])
local burst = tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', key, 'tokens', 'ts', 'factor')
local factor = tonumber(state[3]) or 1.0
local ts = tonumber(state[2]) or now
local elapsed = math.max(0, now - ts)
factor = math.min(1.0, factor + 0.05 * elapsed)
local eff = rate * factor
local capacity = math.max(1, eff * burst)
local tokens = tonumber(state[1])
if tokens == nil then tokens = capacity end
tokens = math.min(capacity, tokens + elapsed * eff)
local granted = 0
if priority > 0 and redis.call('EXISTS', txkey) == 1 then
  granted = 0
else
  granted = math.min(want, math.floor(tokens))
  tokens = tokens - granted
end
local wait_ms = 0
if granted < want then
  wait_ms = math.ceil(math.max(1, (1 - (tokens - math.floor(tokens))) / eff * 1000))
  if priority == 0 then redis.call('PSETEX', txkey, tonumber(ARGV[5]), '1') end
end
redis.call('HSET', key, 'tokens', tokens, 'ts', now, 'factor', factor)
redis.call('PEXPIRE', key, 60000)
return {granted, wait_ms}
"""

_SLOW = """
local key = KEYS[1]
local factor = tonumber(redis.call('HGET', key, 'factor')) or 1.0
factor = math.max(tonumber(ARGV[1]), factor * tonumber(ARGV[2]))
redis.call('HSET', key, 'factor', factor, 'tokens', 0)
redis.call('PEXPIRE', key, 60000)
return tostring(factor)
"""

_REFUND = """
-- a token taken but not spent in time goes back; the next take caps the bucket
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HINCRBYFLOAT', KEYS[1], 'tokens', tonumber(ARGV[1]))
end
return 1
"""

# A token is good for a call within this long of its grant (the headroom above covers it);
# one found older when its call is about to start goes back and a fresh one is taken.
TOKEN_FRESH_SECONDS = 0.01


@dataclass(order=True)
class _Waiter:
    priority: int
    seq: int
    future: asyncio.Future[float] = field(compare=False)


class _RegionBucket:
    def __init__(self, limiter: RateLimiter, region: str) -> None:
        self.limiter = limiter
        self.region = region
        self.waiters: list[_Waiter] = []
        self.tokens: list[float] = []  # expiry times of tokens held locally
        self.wakeup = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        # until when tokens count as scarce (the last time a take came up short, + 1 s)
        self.saturated_until = 0.0

    def start(self) -> None:
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._run(), name=f"ratelimit:{self.region}")

    async def _run(self) -> None:
        limiter = self.limiter
        while True:
            while not self.waiters:
                self.wakeup.clear()
                await self.wakeup.wait()
            self.waiters = [w for w in self.waiters if not w.future.done()]
            heapq.heapify(self.waiters)
            if not self.waiters:
                continue
            priority = self.waiters[0].priority
            want = sum(1 for w in self.waiters if w.priority == priority)
            try:
                granted, wait_ms = await limiter.take(self.region, want, priority)
            except Exception:  # noqa: BLE001 - Redis away: wait and try again, never send
                await asyncio.sleep(0.2)
                continue
            for _ in range(granted):
                if not self.waiters:
                    break
                waiter = heapq.heappop(self.waiters)
                if not waiter.future.done():
                    waiter.future.set_result(time.monotonic())
            if granted < want:
                self.saturated_until = time.monotonic() + 1.0
                await asyncio.sleep(min(wait_ms, 250) / 1000)


class RateLimiter:
    """``await limiter.acquire(region, mail_class)`` before every SES call."""

    def __init__(self, redis: Redis, rates: dict[str, float], prefix: str = "mailer:rl") -> None:
        self.redis = redis
        self.rates = dict(rates)
        self.prefix = prefix
        self._take = redis.register_script(_TAKE)
        self._slow = redis.register_script(_SLOW)
        self._refund = redis.register_script(_REFUND)
        self._buckets: dict[str, _RegionBucket] = {}
        self._seq = itertools.count()

    async def take(self, region: str, want: int, priority: int) -> tuple[int, int]:
        """Take up to ``want`` tokens from Redis: (granted, milliseconds to wait if short)."""
        rate = self.rates[region] * HEADROOM
        granted, wait_ms = await self._take(
            keys=[f"{self.prefix}:{region}", f"{self.prefix}:{region}:txwait"],
            args=[rate, want, priority, BURST_SECONDS, TX_DEMAND_TTL_MS],
        )
        return int(granted), int(wait_ms)

    async def acquire(self, region: str, mail_class: str = "marketing") -> float:
        """Wait for a token of ``region``; the ``time.monotonic()`` it was granted at.

        A token is good for an immediate call: one spent late lands in the same second
        as the tokens granted after it, over the region's rate.
        """
        bucket = self._buckets.get(region)
        if bucket is None:
            bucket = self._buckets[region] = _RegionBucket(self, region)
        bucket.start()
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        heapq.heappush(
            bucket.waiters,
            _Waiter(PRIORITY.get(mail_class, DEFAULT_PRIORITY), next(self._seq), future),
        )
        bucket.wakeup.set()
        return await future

    async def acquire_fresh(self, region: str, mail_class: str = "marketing") -> None:
        """Return once the caller holds a token granted less than TOKEN_FRESH_SECONDS ago.

        Call it right before the SES call. A busy event loop can delay a granted sender;
        its token, spent late, would land in the same second as the tokens granted after
        it. Such a token is refunded (not wasted) and a fresh one is taken.
        """
        granted = await self.acquire(region, mail_class)
        # Only where tokens are scarce can a late one push a second over the rate; with
        # tokens to spare, refunding would only churn (hundreds of senders woken at once
        # cannot all start within milliseconds)
        while (
            self._buckets[region].saturated_until > time.monotonic()
            and time.monotonic() - granted > TOKEN_FRESH_SECONDS
        ):
            await self._refund(keys=[f"{self.prefix}:{region}"], args=[1])
            granted = await self.acquire(region, mail_class)

    async def slow_down(self, region: str, factor: float = 0.7, floor: float = 0.2) -> float:
        """SES throttled us: cut the region's effective rate; it recovers by 5 %/s."""
        return float(await self._slow(keys=[f"{self.prefix}:{region}"], args=[floor, factor]))

    async def close(self) -> None:
        for bucket in self._buckets.values():
            if bucket.task is not None:
                bucket.task.cancel()
        self._buckets.clear()

