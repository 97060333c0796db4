"""Per-region SES rate limiting shared by every worker process through Redis.

Send slots, not a token bucket. Each region keeps in Redis the time of its next free slot
(the "theoretical arrival time" of the generic cell rate algorithm); a Lua script, on
Redis' clock, hands out the next slots one interval apart (just under the region's rate)
and moves that time on. A process books slots for its waiting senders a little ahead and
wakes each sender at its own slot, so the calls of all workers together arrive at SES
evenly spaced: no second gets more than its share, and a moment in which no process asked
loses nothing as long as some process booked ahead (a token bucket small enough to keep
the one-second windows under the rate overflows and wastes tokens whenever the asking
processes are a few milliseconds late). A slot not used is lost; nothing is ever spent
twice. A sender woken too late for its slot (a busy event loop) books a new one rather
than bunch up with the calls after it.

Transactional mail goes first: a booked slot goes, when it comes, to the best sender then
waiting in the process (a transactional sender takes the next slot marketing booked, without
waiting behind marketing's horizon); it books further ahead; while a transactional
sender waits for a slot anywhere, marketing books nothing in that region; and for a second
after transactional mail was booked, marketing books only 20 ms ahead instead of 50, so a
transactional sender of another process (``mailer worker`` gives the lane a process of its
own) finds a free slot sooner.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from typing import NamedTuple

from redis.asyncio import Redis

from mailer import metrics

HEADROOM = 0.98  # slots come a little under the limit: room for jitter between slot and SES
# how far ahead a process may book: long enough that a few milliseconds of event-loop lag
# in every process at once still leaves slots booked; short enough to share slots fairly
HORIZON_SECONDS = 0.05
TX_HORIZON_SECONDS = 1.0  # transactional mail books further ahead: it goes first
POLL_SECONDS = 0.01  # at least this between two bookings of one process while short
LATE_SECONDS = 0.03  # a sender woken later than this after its slot books a new one
TX_DEMAND_TTL_MS = 250
# while transactional mail was booked in the last second, marketing books at most this far
# ahead: a transactional sender of another process (its lane has a process of its own)
# finds the next free slot behind marketing's bookings, and waited ~45 ms behind the
# 50 ms horizon; marketing books more often meanwhile, at the same rate
TX_RECENT_MS = 1000
TX_RECENT_HORIZON_SECONDS = 0.02
PRIORITY = {"transactional": 0}
DEFAULT_PRIORITY = 1

_BOOK = """
local key = KEYS[1]
local txkey = KEYS[2]
local rate = tonumber(ARGV[1])
local want = tonumber(ARGV[2])
local priority = tonumber(ARGV[3])
local horizon = tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', key, 'tat', 'ts', 'factor')
local factor = tonumber(state[3]) or 1.0
local ts = tonumber(state[2]) or now
factor = math.min(1.0, factor + 0.05 * math.max(0, now - ts))
local interval = 1 / (rate * factor)
if priority == 0 then
  redis.call('PSETEX', KEYS[3], ARGV[6], '1')
elseif redis.call('EXISTS', KEYS[3]) == 1 then
  horizon = math.min(horizon, tonumber(ARGV[7]))
end
local tat = tonumber(state[1]) or now
if tat < now then tat = now end  -- time nobody booked is gone: no catch-up burst
local first = tat - now
local limit = now + math.max(horizon, interval)
local granted = 0
if priority > 0 and redis.call('EXISTS', txkey) == 1 then
  limit = -1
end
while granted < want and tat <= limit do
  granted = granted + 1
  tat = tat + interval
end
if priority == 0 and granted < want then
  -- transactional mail found no slot within its horizon: marketing books nothing meanwhile
  redis.call('PSETEX', txkey, tonumber(ARGV[5]), '1')
elseif priority == 0 and first > interval then
  -- it got a slot behind marketing's bookings: marketing books nothing until that slot,
  -- so the next transactional message finds one sooner; no longer, so marketing keeps
  -- what is left of the rate
  redis.call('PSETEX', txkey, math.max(1, math.ceil(first * 1000)), '1')
end
redis.call('HSET', key, 'tat', string.format('%.6f', tat), 'ts', string.format('%.6f', now),
           'factor', factor)
redis.call('PEXPIRE', key, 60000)
local wait = math.max(0, tat - (now + math.max(horizon, interval)))
return {granted, math.floor(first * 1000000), math.floor(interval * 1000000),
        math.ceil(wait * 1000000), tonumber(t[1]), tonumber(t[2])}
"""

_SLOW = """
local key = KEYS[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', key, 'factor', 'tat', 'slowed', 'ts')
local factor = tonumber(state[1]) or 1.0
local ts = tonumber(state[4]) or now
factor = math.min(1.0, factor + 0.05 * math.max(0, now - ts))
-- one cut per ARGV[4] seconds: the answers of one crowded second come together
if now - (tonumber(state[3]) or 0) < tonumber(ARGV[4]) then
  return tostring(factor)
end
factor = math.max(tonumber(ARGV[1]), factor * tonumber(ARGV[2]))
local tat = tonumber(state[2]) or now
if tat < now then tat = now end
-- SES saw too many: one slow interval of silence, then the slower rate
tat = tat + 1 / (tonumber(ARGV[3]) * factor)
redis.call('HSET', key, 'factor', factor, 'tat', string.format('%.6f', tat),
           'ts', string.format('%.6f', now), 'slowed', string.format('%.6f', now))
redis.call('PEXPIRE', key, 60000)
return tostring(factor)
"""


class _Waiter(NamedTuple):
    """A sender waiting for a slot, best first: transactional mail, then the earliest.

    A tuple, not an ordered dataclass: the bucket sorts and heaps its waiters at every
    booking, and tuples compare in C (``seq`` is unique, so the future is never compared);
    sorting 200 waiters took ~400 µs as dataclasses, ~90 µs as tuples."""

    priority: int
    seq: int
    future: asyncio.Future[float]


class _Clock:
    """Redis' clock in this process' ``loop.time()``: every process wakes its senders on
    the one schedule Redis keeps, whatever delays its own answers had.

    Each booking is a sample: Redis' time lies between our send and our receipt, so the
    offset is known to within half the round trip. The sample with the shortest round trip
    wins (a process descheduled while the answer waited gives a long one, and is ignored);
    an old sample gives way slowly to newer ones so drift is followed.
    """

    def __init__(self) -> None:
        self.offset: float | None = None
        self.error = float("inf")
        self.at = 0.0

    def sample(self, sent: float, received: float, redis_time: float) -> None:
        error = (received - sent) / 2
        if self.offset is None or error <= self.error + (received - self.at) * 0.001:
            self.offset = redis_time - (sent + received) / 2
            self.error = error
            self.at = received

    def local(self, redis_time: float) -> float:
        assert self.offset is not None
        return redis_time - self.offset


class _RegionBucket:
    def __init__(self, limiter: RateLimiter, region: str) -> None:
        self.limiter = limiter
        self.region = region
        self.waiters: list[_Waiter] = []
        self.booked = 0  # slots booked that have not come yet
        self.wakeup = asyncio.Event()
        # set when transactional mail starts waiting: it ends a nap taken while short
        self.urgent = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        # until when slots count as scarce: the last booking that came up short, + 1 s
        self.saturated_until = 0.0

    def _use_slot(self, slot: float) -> None:
        """A booked slot has come: it goes to the best waiter now, whichever it was booked
        for, so transactional mail takes the next slot marketing booked in this process
        (and the marketing sender books again). No waiter: the slot goes unused."""
        self.booked -= 1
        while self.waiters:
            waiter = heapq.heappop(self.waiters)
            if not waiter.future.done():
                waiter.future.set_result(slot)
                return

    def start(self) -> None:
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._run(), name=f"ratelimit:{self.region}")

    async def _run(self) -> None:
        limiter = self.limiter
        loop = asyncio.get_running_loop()
        while limiter.clock.offset is None:
            try:
                await limiter.calibrate()
            except Exception:  # noqa: BLE001 - Redis away: no slots until it is back
                await asyncio.sleep(0.2)
        while True:
            self.waiters = [w for w in self.waiters if not w.future.done()]
            heapq.heapify(self.waiters)
            # the best ``booked`` waiters take the slots booked already, as those come:
            # only the others need a booking
            unbooked = sorted(self.waiters)[self.booked :]
            if not unbooked:
                self.wakeup.clear()
                await self.wakeup.wait()
                continue
            priority = unbooked[0].priority
            want = sum(1 for w in unbooked if w.priority == priority)
            sent = loop.time()
            try:
                booking = await limiter.book(self.region, want, priority)
            except Exception:  # noqa: BLE001 - Redis away: wait and try again, never send
                await asyncio.sleep(0.2)
                continue
            granted, first, interval, wait, redis_now = booking
            if granted:
                metrics.RATE_SLOTS.labels(self.region).inc(granted)
            clock = limiter.clock
            clock.sample(sent, loop.time(), redis_now)
            base = clock.local(redis_now)
            self.booked += granted
            for i in range(granted):
                slot = base + first + i * interval
                loop.call_at(slot, self._use_slot, slot)
            if granted < want:
                self.saturated_until = loop.time() + 1.0
                nap = min(max(wait, POLL_SECONDS), 0.25)
                if priority == 0 or any(w.priority == 0 for w in self.waiters):
                    await asyncio.sleep(nap)
                else:
                    # marketing was short: a transactional sender arriving meanwhile books
                    # at once, it does not wait out the nap
                    self.urgent.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.urgent.wait(), nap)


class RateLimiter:
    """``await limiter.acquire(region, mail_class)`` right before every SES call."""

    def __init__(self, redis: Redis, rates: dict[str, float], prefix: str = "mailer:rl") -> None:
        self.redis = redis
        self.rates = dict(rates)
        for region, rate in self.rates.items():
            metrics.RATE_LIMIT.labels(region).set(rate)
        self.prefix = prefix
        self._book = redis.register_script(_BOOK)
        self._slow = redis.register_script(_SLOW)
        self._buckets: dict[str, _RegionBucket] = {}
        self._seq = itertools.count()
        self.clock = _Clock()
        self.late = 0  # slots missed because the sender woke too late

    def set_rate(self, region: str, rate: float) -> None:
        """A new rate for ``region`` (SES GetAccount changed): the next booking uses it."""
        self.rates[region] = float(rate)
        metrics.RATE_LIMIT.labels(region).set(rate)

    async def book(
        self, region: str, want: int, priority: int
    ) -> tuple[int, float, float, float, float]:
        """Book up to ``want`` slots: (booked, seconds to the first, seconds between them,
        seconds until more can be booked, Redis' time of the booking)."""
        rate = self.rates[region] * HEADROOM
        horizon = HORIZON_SECONDS if priority else TX_HORIZON_SECONDS
        granted, first, interval, wait, sec, usec = await self._book(
            keys=[
                f"{self.prefix}:{region}",
                f"{self.prefix}:{region}:txwait",
                f"{self.prefix}:{region}:txrecent",
            ],
            args=[
                rate,
                want,
                priority,
                horizon,
                TX_DEMAND_TTL_MS,
                TX_RECENT_MS,
                TX_RECENT_HORIZON_SECONDS,
            ],
        )
        return int(granted), first / 1e6, interval / 1e6, wait / 1e6, int(sec) + int(usec) / 1e6

    async def acquire(self, region: str, mail_class: str = "marketing") -> None:
        """Return at a send slot of ``region``: make the SES call now, with nothing that
        waits in between (a call made late lands among the slots after it)."""
        bucket = self._buckets.get(region)
        if bucket is None:
            bucket = self._buckets[region] = _RegionBucket(self, region)
        bucket.start()
        loop = asyncio.get_running_loop()
        priority = PRIORITY.get(mail_class, DEFAULT_PRIORITY)
        while True:
            future: asyncio.Future[float] = loop.create_future()
            heapq.heappush(bucket.waiters, _Waiter(priority, next(self._seq), future))
            bucket.wakeup.set()
            if priority == 0:
                bucket.urgent.set()
            slot = await future
            now = loop.time()
            # Lateness matters only where slots are scarce: there a late call lands among
            # the next slots' calls. With slots to spare, a busy process would only keep
            # re-booking (its senders woken together cannot all start within 30 ms).
            if now - slot <= LATE_SECONDS or now > bucket.saturated_until:
                return
            self.late += 1

    async def slow_down(
        self, region: str, factor: float = 0.85, floor: float = 0.2, every: float = 1.0
    ) -> float:
        """SES throttled us: cut the region's rate by ``factor``, at most once per ``every``
        seconds across all processes (the throttling answers of one crowded second arrive
        together and are one signal); it recovers by 5 % of the rate per second."""
        rate = self.rates[region] * HEADROOM
        return float(
            await self._slow(keys=[f"{self.prefix}:{region}"], args=[floor, factor, rate, every])
        )

    async def calibrate(self, samples: int = 5) -> None:
        """A few round trips to Redis' clock before the first booking, so the first slots
        are placed as well as the later ones."""
        loop = asyncio.get_running_loop()
        for _ in range(samples):
            sent = loop.time()
            sec, usec = await self.redis.time()
            self.clock.sample(sent, loop.time(), int(sec) + int(usec) / 1e6)

    async def close(self) -> None:
        for bucket in self._buckets.values():
            if bucket.task is not None:
                bucket.task.cancel()
        self._buckets.clear()
