"""A fenced lock in Redis: one holder at a time, and a token that proves it.

``acquire`` hands out a token from an ever-growing counter and holds the lock under it;
``keep`` extends it while the work runs. A holder that stalled past its lock (a pause, a
lost connection) may still believe it holds it: every write that must come from the
current holder only passes the fence (``FENCED_SET``: set a key only while the lock
holds our token), so a stale holder's writes are refused where they land.
"""

from __future__ import annotations

import asyncio
import contextlib

from redis.asyncio import Redis

# KEYS: lock; ARGV: token, ms → 1 if the lock still holds token (and now lasts ms)
_KEEP = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  if tonumber(ARGV[2]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2])
  else redis.call('DEL', KEYS[1]) end
  return 1
end
return 0
"""

# KEYS: lock, key; ARGV: token, value, seconds → 1 if set (the lock holds token)
FENCED_SET = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
return 1
"""


class FencedLock:
    def __init__(self, redis: Redis, name: str, ttl: float) -> None:
        self.redis = redis
        self.key = f"{name}:lock"
        self.fence_key = f"{name}:fence"
        self.ttl_ms = max(int(ttl * 1000), 1)
        self._keep = redis.register_script(_KEEP)

    async def acquire(self) -> str | None:
        """A fencing token if the lock was free (now held under it), else None."""
        if await self.redis.exists(self.key):
            return None
        token = str(await self.redis.incr(self.fence_key))
        if await self.redis.set(self.key, token, px=self.ttl_ms, nx=True):
            return token
        return None

    async def extend(self, token: str, ms: int | None = None) -> bool:
        """Hold it ``ms`` (default: the ttl) longer; False if it is not ours any more."""
        ms = self.ttl_ms if ms is None else ms
        return bool(await self._keep(keys=[self.key], args=[token, max(ms, 1)]))

    async def keep(self, token: str) -> None:
        """Extend the lock every third of its ttl until cancelled or lost."""
        while True:
            await asyncio.sleep(self.ttl_ms / 3000)
            with contextlib.suppress(Exception):
                if not await self.extend(token):
                    return

    async def release(self, token: str, linger_ms: int = 0) -> None:
        """Let go now, or ``linger_ms`` from now (no new holder before then)."""
        await self._keep(keys=[self.key], args=[token, max(linger_ms, 0)])
