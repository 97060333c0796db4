"""Rate limiter timing: how evenly the slots of one region are spread, measured on the
client's clock (the tests check what holds whatever the machine's load: totals and
ordering; these figures need a quiet machine).

Prints, for each scenario, the figure and its target:
  two limiters at 100/s, 2 s        fullest 1 s window <= 100, used >= 90 % of the rate
  a stalled event loop (250 ms)     fullest 1 s window <= 200, densest 50 ms <= 17
  two limiters at 300/s, 1.5 s      densest 100 ms <= 33, used >= 90 % of the rate
  transactional behind 50 marketing waits < 0.3 s for its slot (one slot per 50 ms)

    python bench/ratelimit.py [--redis redis://127.0.0.1:6379/15]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from redis.asyncio import Redis  # noqa: E402

from mailer.ratelimit.limiter import HEADROOM, RateLimiter  # noqa: E402
from tests.ratelimit.test_limiter import grant_times  # noqa: E402


def fullest(grants: list[float], seconds: float) -> int:
    return max(sum(1 for t in grants if s <= t < s + seconds) for s in grants)


def line(name: str, value: float, target: str, ok: bool) -> None:
    print(f"{name:<44} {value:>10.3f}   target {target:<12} {'ok' if ok else 'MISSED'}")


async def main(url: str) -> None:
    redis = Redis.from_url(url)
    await redis.flushdb()
    rate = 100.0
    grants = await grant_times(
        [RateLimiter(redis, {"r1": rate}), RateLimiter(redis, {"r1": rate})],
        "r1",
        20,
        lambda: asyncio.sleep(2.0),
    )
    line(
        "two limiters 100/s: fullest 1 s",
        fullest(grants, 1.0),
        "<= 100",
        fullest(grants, 1.0) <= rate,
    )
    used = len(grants) / (2 * rate * HEADROOM)
    line("two limiters 100/s: share of the rate used", used, ">= 0.9", used >= 0.9)

    rate = 200.0
    limiter = RateLimiter(redis, {"r3": rate})

    async def stall() -> None:
        await asyncio.sleep(0.6)
        time.sleep(0.25)  # noqa: ASYNC251 - the point: the whole event loop stalls
        await asyncio.sleep(1.2)

    grants = await grant_times([limiter], "r3", 40, stall)
    line(
        "stalled loop 200/s: fullest 1 s",
        fullest(grants, 1.0),
        "<= 200",
        fullest(grants, 1.0) <= rate,
    )
    dense = fullest(grants, 0.05)
    line("stalled loop 200/s: densest 50 ms", dense, "<= 17", dense <= rate * 0.05 + 7)

    rate = 300.0
    grants = await grant_times(
        [RateLimiter(redis, {"r4": rate}), RateLimiter(redis, {"r4": rate})],
        "r4",
        30,
        lambda: asyncio.sleep(1.5),
    )
    dense = fullest(grants, 0.1)
    line("two limiters 300/s: densest 100 ms", dense, "<= 33", dense <= rate * 0.1 + 3)
    used = len(grants) / (1.5 * rate * HEADROOM)
    line("two limiters 300/s: share of the rate used", used, ">= 0.9", used >= 0.9)

    marketing = RateLimiter(redis, {"r2": 20.0})
    transactional = RateLimiter(redis, {"r2": 20.0})

    async def spend() -> None:
        while True:
            await marketing.acquire("r2", "marketing")

    backlog = [asyncio.create_task(spend()) for _ in range(50)]
    await asyncio.sleep(0.5)
    started = time.monotonic()
    await transactional.acquire("r2", "transactional")
    waited = time.monotonic() - started
    for task in backlog:
        task.cancel()
    await asyncio.gather(*backlog, return_exceptions=True)
    await marketing.close()
    await transactional.close()
    line("transactional behind 50 marketing: wait (s)", waited, "< 0.3", waited < 0.3)
    await redis.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15")
    asyncio.run(main(parser.parse_args().redis))
