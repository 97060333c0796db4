"""The campaign counters' invariants (README, "Campaign counters"), checked against the
messages themselves: every test that drives a campaign to an outcome can end with them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

_BY_STATUS = text(
    """
    SELECT count(*) AS messages,
           count(*) FILTER (WHERE status IN ('queued', 'claimed', 'sending')) AS unfinished,
           count(*) FILTER (WHERE sent_at IS NOT NULL) AS sent,
           count(*) FILTER (WHERE status = 'failed') AS failed,
           count(*) FILTER (WHERE status = 'suppressed') AS suppressed,
           count(*) FILTER (WHERE status = 'cancelled') AS cancelled
      FROM messages WHERE campaign_id = :id
    """
)


async def assert_counters_add_up(engine: AsyncEngine, stats: dict[str, Any], cid: int) -> None:
    """``stats`` (GET /v1/campaigns/{id}'s) agree with the campaign's messages."""
    async with engine.connect() as conn:
        m = (await conn.execute(_BY_STATUS, {"id": cid})).one()
    assert stats["recipients"] == m.messages, (stats, m)
    assert stats["queued"] == m.unfinished, (stats, m)
    assert stats["sent"] == m.sent, (stats, m)
    assert stats["failed"] == m.failed, (stats, m)
    assert stats["cancelled"] == m.cancelled, (stats, m)
    # left out at launch (no message) or found suppressed at send time
    assert stats["suppressed"] >= m.suppressed, (stats, m)
    # each recipient is in exactly one of these
    assert stats["recipients"] == (
        stats["queued"] + stats["sent"] + stats["failed"] + m.suppressed + stats["cancelled"]
    ), (stats, m)
    for later in ("delivered", "bounced", "complained", "opened", "clicked", "resent"):
        assert 0 <= stats[later] <= stats["sent"], (later, stats)
    expected = (
        (stats["recipients"] - stats["queued"]) / stats["recipients"] if stats["recipients"] else 0
    )
    assert 0.0 <= stats["progress"] <= 1.0 and abs(stats["progress"] - expected) < 1e-9, stats
