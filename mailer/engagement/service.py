"""Engagement in the events worker, and the campaign reports that read it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from mailer.engagement import repository as repo

ENGAGEMENT_KINDS = ("open", "click")


@dataclass(frozen=True, slots=True)
class Engaged:
    """A message whose engagement changed in this batch, and which firsts it reached."""

    message_id: int
    campaign_id: int | None
    first_open: bool
    first_click: bool
    first_human_open: bool
    first_human_click: bool


async def after_events(
    session: AsyncSession, kind: str, ses_message_ids: list[str]
) -> list[Engaged]:
    """Recompute the engagement of the messages that just got Open or Click events.

    THE place where an applied open or click is known (in the events worker's transaction,
    after the event is stored): outgoing webhooks (``message.opened``, ``message.clicked``)
    hook in here, on ``first_open``/``first_click`` or their human variants. A replayed
    event changes nothing and so reports nothing.
    """
    if kind not in ENGAGEMENT_KINDS or not ses_message_ids:
        return []
    ids = await repo.lock(session, sorted(set(ses_message_ids)))
    return [
        Engaged(
            r.message_id,
            r.campaign_id,
            bool(r.first_open),
            bool(r.first_click),
            bool(r.first_human_open),
            bool(r.first_human_click),
        )
        for r in await repo.refresh(session, ids)
    ]


def rate(part: int, whole: int) -> float:
    """``part / whole``, 0 when nothing is there to divide by (never over 1)."""
    return min(part / whole, 1.0) if whole > 0 else 0.0


def engagement_rates(stats: Any) -> dict[str, Any]:
    """The engagement rates of a campaign's counters: over delivered messages."""
    return {
        "unique_open_rate": rate(stats.unique_opened, stats.delivered),
        "unique_click_rate": rate(stats.unique_clicked, stats.delivered),
        "human_open_rate": rate(stats.human_opened, stats.delivered),
        "human_click_rate": rate(stats.human_clicked, stats.delivered),
    }
