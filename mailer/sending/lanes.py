"""The two lanes of a worker process' senders, and what is handed to them: each lane has
its own queue and pool of senders."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from mailer.batching import GroupWriter
from mailer.sending.outcomes import Outcome
from mailer.sending.plan import SendPlan
from mailer.sending.repository import Claimed

# the two lanes of a worker process: each its own queue and senders, so a campaign's
# thousands of waiting items never stand in front of a transactional message
CAMPAIGN_LANE = "campaign"
TRANSACTIONAL_LANE = "transactional"


@dataclass(slots=True)
class LaneItem:
    """One message handed to the sender pool, and where its outcome goes."""

    plan: SendPlan
    message: Claimed
    contact: Any
    token: str
    marks: GroupWriter[int, set[int]]
    records: GroupWriter[Outcome, int]
    done: asyncio.Future[Any]


def settle(done: asyncio.Future[Any], flushed: asyncio.Future[Any], *, outcome: Outcome) -> None:
    if done.done():
        return
    if flushed.cancelled():
        done.cancel()
    elif flushed.exception() is not None:
        done.set_exception(flushed.exception())  # type: ignore[arg-type]
    else:
        done.set_result(outcome)
