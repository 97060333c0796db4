"""What ``mailer ses check`` reads from the database."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

# the senders that will call SES soon: a From on an unverified identity pauses its
# campaign at the first send, so the check names it before that
_SENDERS_UNDER_WAY = text(
    "SELECT DISTINCT from_address, regions FROM campaigns"
    " WHERE status IN ('scheduled', 'sending') ORDER BY from_address"
)


async def senders_under_way(engine: AsyncEngine) -> list[tuple[str, list[str]]]:
    """(From mailbox, regions) of every scheduled or sending campaign."""
    async with engine.connect() as conn:
        rows = (await conn.execute(_SENDERS_UNDER_WAY)).all()
    return [(str(r.from_address), list(r.regions or [])) for r in rows]
