"""The Redis rate limiter: the rate holds across limiters, transactional mail goes first.

These assert what holds whatever the machine's load (totals, ordering, what was booked);
how evenly the slots fall on the client's clock needs a quiet machine: bench/ratelimit.py."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from mailer.ratelimit.limiter import HEADROOM, HORIZON_SECONDS, RateLimiter


async def grant_times(
    limiters: list[RateLimiter],
    region: str,
    senders: int,
    meanwhile: Callable[[], Awaitable[object]],
) -> list[float]:
    """``senders`` tasks per limiter acquire slots of ``region`` back to back while
    ``meanwhile()`` runs; the sorted times their slots were granted."""
    grants: list[float] = []

    async def spend(limiter: RateLimiter) -> None:
        while True:
            await limiter.acquire(region)
            grants.append(time.monotonic())

    tasks = [asyncio.create_task(spend(lim)) for lim in limiters for _ in range(senders)]
    try:
        await meanwhile()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for limiter in limiters:
            await limiter.close()
    return sorted(grants)


def most_allowed(rate: float, seconds: float) -> float:
    """The most slots ``seconds`` of a region at ``rate`` can hand out: the run's own, plus
    what a limiter may have booked ahead when it began (its horizon), plus one."""
    return rate * (seconds + HORIZON_SECONDS) + 1


async def test_two_limiters_together_stay_under_the_rate(redis: Redis):
    """Two limiters (as two worker processes would) share one region's slot schedule: over
    the run they hand out no more than the rate allows, and both get slots."""
    rate = 100.0
    limiters = [RateLimiter(redis, {"r1": rate}), RateLimiter(redis, {"r1": rate})]
    began = time.monotonic()
    grants = await grant_times(limiters, "r1", 20, lambda: asyncio.sleep(2.0))
    elapsed = time.monotonic() - began
    assert len(grants) <= most_allowed(rate, elapsed), (len(grants), elapsed)
    # and the rate is used: a loaded machine slows the senders, never speeds them up
    assert len(grants) >= rate * HEADROOM * 0.5


async def test_transactional_mail_takes_slots_before_marketing(redis: Redis):
    """With marketing senders queued on a saturated region, a transactional send still
    gets one of the next slots, not a place behind the marketing backlog."""
    marketing_limiter = RateLimiter(redis, {"r2": 20.0})
    transactional_limiter = RateLimiter(redis, {"r2": 20.0})
    marketing_done = 0
    saturated = asyncio.Event()

    async def marketing() -> None:
        nonlocal marketing_done
        while True:
            await marketing_limiter.acquire("r2", "marketing")
            marketing_done += 1
            if marketing_done >= 5:
                saturated.set()

    backlog = [asyncio.create_task(marketing()) for _ in range(50)]
    await saturated.wait()  # the region is saturated, 50 marketing senders are waiting
    before = marketing_done
    await transactional_limiter.acquire("r2", "transactional")
    ahead = marketing_done - before
    for task in backlog:
        task.cancel()
    await asyncio.gather(*backlog, return_exceptions=True)
    await marketing_limiter.close()
    await transactional_limiter.close()
    # behind the backlog, 50 marketing slots would go first; it waits only for the few
    # marketing had booked ahead (a 50 ms horizon at 20/s: one or two)
    assert ahead <= 4, ahead


async def test_a_stalled_event_loop_does_not_make_a_burst(redis: Redis):
    """Senders woken late for their slots (the process was busy) book new slots instead
    of calling all at once, so the one-second windows stay under the rate."""
    rate = 200.0
    limiter = RateLimiter(redis, {"r3": rate})

    async def stall() -> None:
        await asyncio.sleep(0.6)
        time.sleep(0.25)  # noqa: ASYNC251 - the point: the whole event loop stalls
        await asyncio.sleep(1.2)

    began = time.monotonic()
    grants = await grant_times([limiter], "r3", 40, stall)
    elapsed = time.monotonic() - began
    assert limiter.late > 0  # slots passed during the stall were given up, not spent late
    assert len(grants) <= most_allowed(rate, elapsed), (len(grants), elapsed)


async def test_marketing_books_less_far_ahead_while_transactional_mail_is_booked(redis: Redis):
    """For a second after a transactional booking, marketing books 20 ms of slots ahead
    instead of 50 ms: a transactional sender in another process (its lane has a process of
    its own) finds a free slot behind fewer marketing bookings."""
    from mailer.ratelimit.limiter import HORIZON_SECONDS, TX_RECENT_HORIZON_SECONDS

    rate = 1000.0  # a slot every ~1 ms: the horizon, not the rate, bounds a booking
    quiet = RateLimiter(redis, {"q": rate})
    granted, *_ = await quiet.book("q", 500, 1)
    assert granted >= HORIZON_SECONDS * rate * HEADROOM * 0.9, granted

    busy = RateLimiter(redis, {"t": rate})
    tx_granted, *_ = await busy.book("t", 1, 0)
    assert tx_granted == 1
    granted, *_ = await busy.book("t", 500, 1)
    assert 1 <= granted <= (TX_RECENT_HORIZON_SECONDS + 0.005) * rate, granted
