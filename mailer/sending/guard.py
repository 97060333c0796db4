"""What an SES error does next, per worker process: a region slowed down after a throttle,
a mail class paused (and its transactional mail held) after an account error, a campaign
stopped by its error rate, and the classes blocked because their configuration set is
missing (``sending.configuration_sets``)."""

from __future__ import annotations

import random
import time
from datetime import datetime

import structlog

from mailer.config import Settings
from mailer.db import short_error
from mailer.ratelimit.limiter import RateLimiter
from mailer.sending.error_rate import ErrorRate, Pauser
from mailer.sending.outcomes import Outcome
from mailer.sending.plan import SendPlan
from mailer.sending.regions import RegionHealth
from mailer.sending.repository import Claimed
from mailer.sending.transport import ErrorKind, SendError

log = structlog.get_logger(__name__)


class SendGuard:
    def __init__(
        self,
        settings: Settings,
        limiter: RateLimiter,
        health: RegionHealth,
        pauser: Pauser | None,
    ) -> None:
        self.settings = settings
        self.limiter = limiter
        self.health = health
        self.pauser = pauser
        self.errors = ErrorRate(settings.error_stop_window, settings.error_stop_failures)
        self._class_paused_at: dict[str, float] = {}
        self._slowed: dict[str, float] = {}
        self.held: dict[str, float] = {}  # mail class -> until when (monotonic)
        # mail class -> why it may not send: its configuration set is missing
        # (mailer.sending.configuration_sets checks at start and every account poll)
        self.blocked: dict[str, str] = {}

    def held_for(self, mail_class: str) -> float | None:
        """Seconds left of this process' hold on ``mail_class``'s non-campaign mail."""
        left = self.held.get(mail_class, 0.0) - time.monotonic()
        return left if left > 0 else None

    async def failed(
        self, plan: SendPlan, message: Claimed, region: str, exc: SendError, call_started: datetime
    ) -> Outcome:
        reason = exc.reason[:1000]
        if exc.kind is ErrorKind.THROTTLED:
            await self.slow_down(region)
            return Outcome(
                message.id, "throttled", region=region, error=reason, delay=0.5 + random.random()
            )
        if exc.kind is ErrorKind.QUOTA:
            await self.health.park(region, self.settings.quota_park_seconds)
            return Outcome(message.id, "throttled", region=region, error=reason, delay=1.0)
        if exc.kind is ErrorKind.ACCOUNT:
            # nothing is wrong with the message: it waits, its attempt given back. A
            # campaign waits until the operator resumes what the pause stopped;
            # transactional mail of the class is held in this process, then one call
            # probes SES again: it never fails for it
            await self.pause_class(plan.mail_class, reason, call_started)
            delay = 1.0
            if plan.campaign_id is None:
                delay = self.settings.account_hold_seconds * (0.5 + random.random())
                self.held[plan.mail_class] = time.monotonic() + delay
            return Outcome(message.id, "throttled", region=region, error=reason, delay=delay)
        if exc.kind is ErrorKind.PERMANENT:
            return Outcome(message.id, "failed", region=region, error=reason)
        await self.health.failure(region)
        attempts = message.attempts + 1
        if attempts >= self.settings.transient_max_attempts:
            return Outcome(
                message.id,
                "failed",
                region=region,
                error=f"gave up after {attempts} attempts: {reason}",
            )
        # exponential backoff with full jitter
        delay = self.settings.retry_base_seconds * (2 ** (attempts - 1)) * (0.5 + random.random())
        return Outcome(message.id, "retry", region=region, error=reason, delay=delay)

    async def slow_down(self, region: str) -> None:
        """SES throttled a call: slow the region's limiter down (once per 0.2 s here; the
        limiter cuts at most once a second across processes)."""
        now = time.monotonic()
        if now - self._slowed.get(region, 0.0) > 0.2:
            self._slowed[region] = now
            await self.limiter.slow_down(region)

    async def pause_class(self, mail_class: str, reason: str, call_started: datetime) -> None:
        # the calls in flight all come back with the same answer: one pause will do
        now = time.monotonic()
        if self.pauser is None or now - self._class_paused_at.get(mail_class, -1.0) < 0.5:
            return
        self._class_paused_at[mail_class] = now
        try:
            await self.pauser.pause_class(mail_class, reason, call_started)
        except Exception as exc:  # noqa: BLE001 - the next account error tries again
            self._class_paused_at.pop(mail_class, None)
            log.warning("pause_class_failed", mail_class=mail_class, error=short_error(exc))

    async def note(self, plan: SendPlan, outcome: Outcome) -> None:
        """Count a final outcome of campaign mail towards its campaign's error-rate stop."""
        campaign_id = plan.campaign_id
        if campaign_id is None:
            return
        since = self.errors.note(campaign_id, outcome.outcome == "failed")
        if since is None or self.pauser is None:
            return
        reason = (
            f"error-rate stop: {self.errors.failures} of the last "
            f"{self.errors.window} sends failed; last: {outcome.error}"
        )
        try:
            await self.pauser.stop_campaign(campaign_id, reason[:1000], since)
        except Exception as exc:  # noqa: BLE001 - the window fills again and tries again
            log.warning("error_rate_stop_failed", campaign_id=campaign_id, error=short_error(exc))
