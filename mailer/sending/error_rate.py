"""What the send path does when SES blames the account or a campaign keeps failing: the
``Pauser`` it calls, and listmonk's error-rate stop."""

from __future__ import annotations

import time
from collections import deque
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Pauser(Protocol):
    """What the send path stops when SES says the account, not the message, is at fault."""

    async def pause_class(self, mail_class: str, reason: str, call_started: datetime) -> None:
        """Pause what sends as ``mail_class``; not what was resumed after ``call_started``."""
        ...

    async def stop_campaign(self, campaign_id: int, reason: str, since: datetime) -> None:
        """Pause one campaign (error-rate stop); not if it was resumed after ``since``."""
        ...


class ErrorRate:
    """listmonk's error-rate stop: a campaign with ``failures`` failed of its last
    ``window`` outcomes (sent or failed) in this process stops itself.

    ``note`` answers, when it trips, the time of the oldest outcome counted: a campaign
    resumed after that is judged again from its next outcomes, not from these.
    """

    def __init__(self, window: int, failures: int) -> None:
        self.window = window
        self.failures = failures
        self._recent: dict[int, deque[tuple[bool, float]]] = {}  # (failed, monotonic)
        self._failed: dict[int, int] = {}

    def note(self, campaign_id: int, failed: bool) -> datetime | None:
        if self.failures <= 0 or self.window <= 0:
            return None
        recent = self._recent.get(campaign_id)
        if recent is None:
            if len(self._recent) > 1000:
                self._recent.clear()
                self._failed.clear()
            recent = self._recent[campaign_id] = deque()
        recent.append((failed, time.monotonic()))  # per message: no datetime made
        count = self._failed.get(campaign_id, 0) + failed
        if len(recent) > self.window:
            count -= recent.popleft()[0]
        self._failed[campaign_id] = count
        if count < self.failures:
            return None
        since = datetime.now(UTC) - timedelta(seconds=time.monotonic() - recent[0][1])
        self.forget(campaign_id)
        return since

    def forget(self, campaign_id: int) -> None:
        self._recent.pop(campaign_id, None)
        self._failed.pop(campaign_id, None)
