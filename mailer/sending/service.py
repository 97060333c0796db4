"""The send path of one batch: claim → suppression → render → rate token → SES → record.

Many SES calls are in flight at once (one semaphore per worker process); state changes
are group-committed: a message is marked ``sending`` (in a shared statement) just before
its SES call, and outcomes are written in batches with the campaign counters.
"""

from __future__ import annotations

import asyncio
import functools
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import structlog
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mailer.config import Settings
from mailer.db import transaction
from mailer.ratelimit.limiter import RateLimiter
from mailer.sending import repository as repo
from mailer.sending.batching import GroupWriter
from mailer.sending.regions import RegionHealth
from mailer.sending.repository import Claimed, Outcome
from mailer.sending.transport import ErrorKind, OutboundEmail, SendError, Transport
from mailer.suppression.tokens import make_token
from mailer.template.content import mail_headers, unsubscribe_mailto
from mailer.template.render import CompiledTemplate, RenderError, compiled_version

log = structlog.get_logger(__name__)

T = TypeVar("T")

# how long a rate token stays good for; the limiter keeps 1.5 % headroom (15 ms a second)


@dataclass(slots=True)
class CampaignPlan:
    """What a batch needs of its campaign; cached per process (it never changes once sent)."""

    id: int
    name: str
    mail_class: str
    from_address: str
    reply_to: str | None
    regions: list[str]
    template: CompiledTemplate
    configuration_set: str | None


_PLAN = text(
    """
    SELECT c.id, c.name, c.mail_class, c.from_address, c.reply_to, c.regions,
           v.id AS version_id, v.subject, v.html, v.text
      FROM campaigns c JOIN template_versions v ON v.id = c.template_version_id
     WHERE c.id = :id
    """
)


class CampaignStates:
    """Which campaigns are sending, as seen at most ``refresh`` seconds ago (pause → stop).

    A view older than ``stale_after`` (the database did not answer) counts as not
    sending: a pause must stop SES calls within 2 s even when polling stalls.
    """

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], refresh: float = 0.25,
                 stale_after: float = 1.0):
        self.sessionmaker = sessionmaker
        self.refresh = refresh
        self.stale_after = stale_after
        self._status: dict[int, str] = {}
        self._seen_at: dict[int, float] = {}
        self._watching: dict[int, int] = {}
        self._task: asyncio.Task[None] | None = None

    def watch(self, campaign_id: int, status: str = "sending") -> None:
        """Start following a campaign whose ``status`` was just read (by the claim)."""
        self._watching[campaign_id] = self._watching.get(campaign_id, 0) + 1
        if campaign_id not in self._status:
            self._status[campaign_id] = status
            self._seen_at[campaign_id] = time.monotonic()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="campaign-states")

    def unwatch(self, campaign_id: int) -> None:
        left = self._watching.get(campaign_id, 0) - 1
        if left <= 0:
            self._watching.pop(campaign_id, None)
            self._status.pop(campaign_id, None)
            self._seen_at.pop(campaign_id, None)
        else:
            self._watching[campaign_id] = left

    def is_sending(self, campaign_id: int) -> bool:
        fresh = time.monotonic() - self._seen_at.get(campaign_id, 0.0) < self.stale_after
        return fresh and self._status.get(campaign_id) == "sending"

    async def poll(self) -> None:
        ids = list(self._watching)
        if not ids:
            return
        asked = time.monotonic()  # the answer is as old as the question
        async with self.sessionmaker() as session:
            rows = await session.execute(
                text("SELECT id, status FROM campaigns WHERE id = ANY(CAST(:ids AS bigint[]))"),
                {"ids": ids},
            )
            for row in rows:
                self._status[row.id] = row.status
                self._seen_at[row.id] = asked

    async def _run(self) -> None:
        while self._watching:
            try:
                await self.poll()
            except Exception:  # noqa: BLE001 - keep the last view; sends stop if it goes stale
                log.warning("campaign_states_poll_failed", exc_info=True)
            await asyncio.sleep(self.refresh)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()


async def _retry_db(write: Callable[[], Awaitable[T]], attempts: int = 5) -> T:
    """Run a short write transaction, again after a database error (deadlock, restart)."""
    for attempt in range(attempts):
        try:
            return await write()
        except DBAPIError:
            if attempt == attempts - 1:
                raise
            log.warning("db_write_retry", attempt=attempt + 1, exc_info=True)
            await asyncio.sleep(0.05 * 2**attempt * (0.5 + random.random()))
    raise AssertionError("unreachable")


@dataclass
class BatchReport:
    claimed: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    next_due: Any = None


class Sender:
    """One per worker process: the shared semaphore, limiter, region health and caches."""

    def __init__(self, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession],
                 transport: Transport, limiter: RateLimiter, health: RegionHealth,
                 on_class_paused: Callable[[str, str, datetime], Awaitable[None]] | None = None,
                 ) -> None:
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.engine = sessionmaker.kw["bind"]
        self.transport = transport
        self.limiter = limiter
        self.health = health
        self.states = CampaignStates(sessionmaker)
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._consumers: list[asyncio.Task[None]] = []
        self.on_class_paused = on_class_paused
        self._plans: dict[int, CampaignPlan] = {}
        self._slowed: dict[str, float] = {}

    async def plan(self, campaign_id: int) -> CampaignPlan:
        plan = self._plans.get(campaign_id)
        if plan is None:
            async with self.sessionmaker() as session:
                row = (await session.execute(_PLAN, {"id": campaign_id})).one()
            template = compiled_version(self.settings.templates_dir, row.version_id, row.subject,
                                        row.html, row.text)
            plan = CampaignPlan(
                id=row.id, name=row.name, mail_class=row.mail_class,
                from_address=row.from_address, reply_to=row.reply_to,
                regions=list(row.regions) or list(self.settings.regions), template=template,
                configuration_set=self.settings.configuration_sets.get(row.mail_class),
            )
            if len(self._plans) > 1000:
                self._plans.clear()
            self._plans[campaign_id] = plan
        return plan

    async def send_batch(self, campaign_id: int, lo: int, hi: int) -> BatchReport:
        """Send the due, queued messages of ids [lo, hi] of a sending campaign."""
        report = BatchReport()
        token = uuid.uuid4().hex
        lease = self.settings.lease_seconds
        async with transaction(self.sessionmaker) as session:
            claimed = await repo.claim(session, campaign_id, lo, hi, token, lease, hi - lo + 1)
        report.claimed = len(claimed)
        if claimed:
            self.states.watch(campaign_id)
            renewer = asyncio.create_task(self._renew(token))
            try:
                await self._send_claimed(campaign_id, claimed, token, report)
            finally:
                renewer.cancel()
                self.states.unwatch(campaign_id)
        async with self.sessionmaker() as session:
            report.next_due = await repo.next_due(session, campaign_id, lo, hi)
        return report

    async def _send_claimed(self, campaign_id: int, claimed: list[Claimed], token: str,
                            report: BatchReport) -> None:
        plan = await self.plan(campaign_id)

        async def flush_marks(ids: list[int]) -> set[int]:
            async def once() -> set[int]:
                # a bare connection: these flushes are the hot path, an ORM session is not
                async with self.engine.begin() as conn:
                    return await repo.mark_sending(conn, ids, token)

            return await _retry_db(once)

        async def flush_outcomes(outcomes: list[Outcome]) -> int:
            # a lost record means mail SES accepted is sent again once the lease lapses:
            # try hard. Running it again is safe: applied rows no longer carry our token.
            async def once() -> int:
                async with self.engine.begin() as conn:
                    return await repo.record(conn, outcomes, token)

            return await _retry_db(once)

        # 20 ms: with SES latency the senders come back one by one, and a flush per few
        # messages would cost more than the calls; the wait is hidden by the other senders
        marks: GroupWriter[int, set[int]] = GroupWriter(flush_marks, delay=0.005, max_items=200)
        records: GroupWriter[Outcome, int] = GroupWriter(flush_outcomes, delay=0.05,
                                                         max_items=500)
        async with self.sessionmaker() as session:
            contacts = await repo.contacts(
                session, [m.contact_id for m in claimed if m.contact_id is not None])
            suppressed = await repo.suppressed(session, [m.email for m in claimed],
                                               plan.mail_class)
        await self.health.refresh()

        pending: list[asyncio.Future[Any]] = []
        for message in claimed:
            contact = contacts.get(message.contact_id) if message.contact_id else None
            if contact is None:
                pending.append(records.add(Outcome(message.id, "cancelled",
                                                   error="contact erased")))
            elif message.email in suppressed or (
                plan.mail_class == "marketing" and contact.status != "subscribed"
            ):
                pending.append(records.add(Outcome(message.id, "suppressed")))
            else:
                done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
                self._queue.put_nowait(_Item(plan, message, contact, token, marks, records, done))
                pending.append(done)
        self._ensure_pool()
        results = await asyncio.gather(*pending, return_exceptions=True)
        await records.drain()
        for message, result in zip(claimed, results, strict=True):
            if isinstance(result, BaseException):
                log.error("send_failed_unexpectedly", message_id=message.id, error=repr(result))
                name = "error"
            elif isinstance(result, Outcome):
                name = result.outcome
            elif result is None:
                name = "lost_lease"
            else:
                name = "recorded"
            report.outcomes[name] = report.outcomes.get(name, 0) + 1

    def _ensure_pool(self) -> None:
        """``send_concurrency`` long-lived senders per process: SES calls in flight at once."""
        if not self._consumers:
            self._consumers = [
                asyncio.create_task(self._consume(), name=f"sender-{i}")
                for i in range(self.settings.send_concurrency)
            ]

    async def _consume(self) -> None:
        while True:
            item = await self._queue.get()
            try:
                outcome = await self._send_one(item.plan, item.message, item.contact, item.token,
                                               item.marks)
            except Exception as exc:  # noqa: BLE001 - the batch reports it; the lease recovers
                if not item.done.done():
                    item.done.set_exception(exc)
                continue
            if outcome is None:
                item.done.set_result(None)
                continue
            # written as soon as known: the window of "accepted, not recorded" stays short;
            # the batch waits for the flush, this sender moves on
            flushed = item.records.add(outcome)
            flushed.add_done_callback(functools.partial(_settle, item.done, outcome=outcome))

    def build(self, plan: CampaignPlan, message: Claimed, contact: Any) -> OutboundEmail:
        """Render one message; RenderError fails that message only."""
        token = make_token(self.settings.secret_key, message.id)
        public = self.settings.public_url.rstrip("/")
        unsubscribe_url = f"{public}/unsubscribe/{token}"
        context = {
            "contact": {"email": message.email, "attributes": contact.attributes,
                        "tags": list(contact.tags)},
            "campaign": {"id": plan.id, "name": plan.name},
            "data": {},
            "unsubscribe_url": unsubscribe_url,
            "postal_address": self.settings.postal_address,
        }
        rendered = plan.template.render(context)
        headers = mail_headers(plan.mail_class, unsubscribe_url,
                               unsubscribe_mailto(plan.from_address, token))
        return OutboundEmail(
            to=message.email, from_address=plan.from_address, subject=rendered.subject,
            html=rendered.html, text=rendered.text, reply_to=plan.reply_to, headers=headers,
            tags={"mail_class": plan.mail_class, "campaign_id": str(plan.id),
                  "message_id": str(message.id)},
            configuration_set=plan.configuration_set,
        )

    async def _send_one(self, plan: CampaignPlan, message: Claimed, contact: Any, token: str,
                        marks: GroupWriter[int, set[int]]) -> Outcome | None:
        # one of the pool's senders: the pool size bounds the calls in flight
        if not self.states.is_sending(plan.id):
            return Outcome(message.id, "release")
        try:
            email = self.build(plan, message, contact)
        except RenderError as exc:
            return Outcome(message.id, "failed", error=str(exc)[:1000])
        await self.health.refresh()
        region = self.health.pick(plan.regions)
        if region is None:
            return Outcome(message.id, "release", delay=1.0)
        if message.id not in await marks.submit(message.id):
            return None  # our lease lapsed and another worker has the message
        # The token comes last, right before the call: a token spent late (after a
        # database round trip) would add to a later second's sends, over the rate.
        # A kill while waiting here counts the message as maybe sent: conservative.
        await self.limiter.acquire(region, plan.mail_class)
        # the pause or the region's breaker may have come while we waited: no SES
        # call then (a release from ``sending`` gives the attempt back). Nothing that
        # waits may stand between the fresh token and the call.
        if not self.states.is_sending(plan.id) or self.health.is_down(region):
            return Outcome(message.id, "release")
        call_started = datetime.now(UTC)
        try:
            sid = await self.transport.send(region, email)
        except SendError as exc:
            return await self._failed(plan, message, region, exc, call_started)
        self.health.success(region)
        return Outcome(message.id, "sent", sid=sid, region=region)

    async def _failed(self, plan: CampaignPlan, message: Claimed, region: str,
                      exc: SendError, call_started: datetime) -> Outcome:
        reason = exc.reason[:1000]
        if exc.kind is ErrorKind.THROTTLED:
            now = time.monotonic()
            if now - self._slowed.get(region, 0.0) > 0.2:
                self._slowed[region] = now
                await self.limiter.slow_down(region)
            return Outcome(message.id, "throttled", region=region, error=reason,
                           delay=0.5 + random.random())
        if exc.kind is ErrorKind.QUOTA:
            await self.health.park(region, self.settings.quota_park_seconds)
            return Outcome(message.id, "throttled", region=region, error=reason, delay=1.0)
        if exc.kind is ErrorKind.PAUSED:
            if self.on_class_paused is not None:
                await self.on_class_paused(plan.mail_class, reason, call_started)
            return Outcome(message.id, "throttled", region=region, error=reason)
        if exc.kind is ErrorKind.PERMANENT:
            return Outcome(message.id, "failed", region=region, error=reason)
        await self.health.failure(region)
        attempts = message.attempts + 1
        if attempts >= self.settings.transient_max_attempts:
            return Outcome(message.id, "failed", region=region,
                           error=f"gave up after {attempts} attempts: {reason}")
        # exponential backoff with full jitter
        delay = self.settings.retry_base_seconds * (2 ** (attempts - 1)) * (0.5 + random.random())
        return Outcome(message.id, "retry", region=region, error=reason, delay=delay)

    async def _renew(self, token: str) -> None:
        interval = self.settings.lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            try:
                async with transaction(self.sessionmaker) as session:
                    await repo.renew_lease(session, token, self.settings.lease_seconds)
            except Exception:  # noqa: BLE001 - a missed renewal only shortens the lease
                log.warning("lease_renewal_failed", exc_info=True)

    async def close(self) -> None:
        for task in self._consumers:
            task.cancel()
        self._consumers.clear()
        await self.states.close()


@dataclass(slots=True)
class _Item:
    """One message handed to the sender pool, and where its outcome goes."""

    plan: CampaignPlan
    message: Claimed
    contact: Any
    token: str
    marks: GroupWriter[int, set[int]]
    records: GroupWriter[Outcome, int]
    done: asyncio.Future[Any]


def _settle(done: asyncio.Future[Any], flushed: asyncio.Future[Any], *, outcome: Outcome) -> None:
    if done.done():
        return
    if flushed.cancelled():
        done.cancel()
    elif flushed.exception() is not None:
        done.set_exception(flushed.exception())  # type: ignore[arg-type]
    else:
        done.set_result(outcome)
