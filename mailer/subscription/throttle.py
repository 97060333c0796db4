"""Signup rate limits, counted in Redis per client address (a minute) and per address (an
hour), shared by every API process. Counted before the database is asked anything, so the
answer never depends on whether the address is a contact."""

from __future__ import annotations

import hashlib

from redis.asyncio import Redis

PREFIX = "mailer:subscribe"


async def over_limit(
    redis: Redis, ip: str | None, email: str, per_ip_minute: int, per_address_hour: int
) -> bool:
    """Count one submission; True when the client or the address is over its limit."""
    ip_key = f"{PREFIX}:ip:{ip or '-'}"
    address_key = f"{PREFIX}:addr:{hashlib.sha256(email.encode()).hexdigest()[:32]}"
    async with redis.pipeline(transaction=False) as pipe:
        pipe.set(ip_key, 0, ex=60, nx=True)
        pipe.incr(ip_key)
        pipe.set(address_key, 0, ex=3600, nx=True)
        pipe.incr(address_key)
        _, by_ip, _, by_address = await pipe.execute()
    return int(by_ip) > per_ip_minute or int(by_address) > per_address_hour
