"""Failed sign-ins, counted in Redis per client address and per key prefix.

Past ``max_failures`` failures in a window (fixed, starting at the first failure) every
sign-in from that address, or naming that key prefix, is refused until the window ends,
a correct key too: otherwise the refusal itself would not slow guessing down. Shared by
every API process (Redis), so more processes give an attacker no more tries.
"""

from __future__ import annotations

from redis.asyncio import Redis

PREFIX = "mailer:login-failures"


class LoginThrottle:
    def __init__(self, redis: Redis, max_failures: int, window_seconds: float) -> None:
        self.redis = redis
        self.max_failures = max_failures
        self.window = max(1, int(window_seconds))

    @staticmethod
    def _keys(address: str | None, key_prefix: str | None) -> list[str]:
        keys = [f"{PREFIX}:addr:{address or '-'}"]
        if key_prefix:
            keys.append(f"{PREFIX}:key:{key_prefix}")
        return keys

    async def retry_after(self, address: str | None, key_prefix: str | None) -> int | None:
        """Seconds until sign-in is allowed again, or None when it is allowed now."""
        keys = self._keys(address, key_prefix)
        counts = await self.redis.mget(keys)
        waits = [
            await self.redis.ttl(key)
            for key, count in zip(keys, counts, strict=True)
            if count is not None and int(count) >= self.max_failures
        ]
        if not waits:
            return None
        return max(1, *waits)

    async def failed(self, address: str | None, key_prefix: str | None) -> None:
        """Count one failed sign-in against the address and the key prefix."""
        async with self.redis.pipeline(transaction=True) as pipe:
            for key in self._keys(address, key_prefix):
                pipe.set(key, 0, ex=self.window, nx=True)  # the window starts now
                pipe.incr(key)
            await pipe.execute()
