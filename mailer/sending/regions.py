"""Region health shared by all workers: circuit breaker and quota parking, in Redis.

Each worker counts consecutive failures per region; past the threshold it opens the
region's circuit for everyone (a key with a TTL). When the key expires the region gets
traffic again: those first sends are the probes, and a failing region opens again at once.
"""

from __future__ import annotations

import itertools
import time

from redis.asyncio import Redis


class RegionHealth:
    def __init__(
        self,
        redis: Redis,
        regions: list[str],
        *,
        failure_threshold: int = 10,
        open_seconds: float = 15.0,
        refresh_seconds: float = 0.5,
        prefix: str = "mailer:region",
    ) -> None:
        self.redis = redis
        self.regions = list(regions)
        self.failure_threshold = failure_threshold
        self.open_seconds = open_seconds
        self.refresh_seconds = refresh_seconds
        self.prefix = prefix
        self._failures: dict[str, int] = {}
        self._down: set[str] = set()
        self._refreshed = 0.0
        self._rr = itertools.count()

    async def refresh(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._refreshed < self.refresh_seconds:
            return
        self._refreshed = now
        keys = [f"{self.prefix}:{r}:{k}" for r in self.regions for k in ("open", "parked")]
        try:
            values = await self.redis.mget(keys)
        except Exception:  # noqa: BLE001 - keep the last view while Redis is away
            return
        down = set()
        for i, region in enumerate(self.regions):
            if values[2 * i] is not None or values[2 * i + 1] is not None:
                down.add(region)
        # half-open: the first sends to a region that comes back are probes; one failure
        # takes it out again (not another ``failure_threshold`` failed messages), one
        # success closes the circuit
        for region in self._down - down:
            self._failures[region] = self.failure_threshold - 1
        self._down = down

    def pick(self, candidates: list[str]) -> str | None:
        """A healthy region of ``candidates``, spread round-robin; None if all are down."""
        healthy = [r for r in candidates if r not in self._down]
        if not healthy:
            return None
        return healthy[next(self._rr) % len(healthy)]

    def is_down(self, region: str) -> bool:
        return region in self._down

    def success(self, region: str) -> None:
        self._failures[region] = 0

    async def failure(self, region: str) -> None:
        count = self._failures.get(region, 0) + 1
        self._failures[region] = count
        if count >= self.failure_threshold and region not in self._down:
            self._down.add(region)
            self._failures[region] = 0
            await self.redis.set(
                f"{self.prefix}:{region}:open", "1", px=int(self.open_seconds * 1000)
            )

    async def park(self, region: str, seconds: float) -> None:
        """Daily quota exhausted: no traffic to the region for ``seconds``."""
        self._down.add(region)
        await self.redis.set(f"{self.prefix}:{region}:parked", "1", px=int(seconds * 1000))
