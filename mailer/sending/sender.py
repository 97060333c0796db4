"""The one send path of every message: claim → suppression → render → rate token → SES →
record.

Work is claimed two ways: a campaign's id range (``send_range``, from the ``send_batch`` job)
or transactional messages by id (``send_messages``, test sends of campaigns included); from
there both kinds share everything: a ``SendPlan`` each (``sending.plan``), one
``build_email`` (``sending.build``), leases, group commits, suppression, the rate limiter,
regions and error handling. Each worker process has two lanes of senders (campaign,
transactional), so a campaign's waiting items never queue in front of a transactional
message. Many SES calls are in flight at once; state changes are group-committed: a message
is marked ``sending`` (in a shared statement) just before its SES call, and outcomes are
written in batches with the campaign counters.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from mailer import metrics
from mailer.batching import GroupWriter
from mailer.config import Settings
from mailer.db import invalidating, retry_db, short_error, transaction
from mailer.ratelimit.limiter import RateLimiter
from mailer.sending import outcomes
from mailer.sending import repository as repo
from mailer.sending.build import build_email
from mailer.sending.campaign_states import CampaignStates
from mailer.sending.error_rate import Pauser
from mailer.sending.guard import SendGuard
from mailer.sending.lanes import CAMPAIGN_LANE, TRANSACTIONAL_LANE, LaneItem, settle
from mailer.sending.outcomes import Outcome
from mailer.sending.plan import Plans, SendPlan
from mailer.sending.regions import RegionHealth
from mailer.sending.repository import Claimed
from mailer.sending.transport import ErrorKind, SendError, Transport
from mailer.sending.warmup import prepare_connections
from mailer.suppression import repository as suppressions
from mailer.template.render import RenderError

log = structlog.get_logger(__name__)

T = TypeVar("T")

# a throttled call of transactional mail asks the limiter for another slot at once, this
# many times, before the message goes back to the queue like campaign mail (0.5-1.5 s)
THROTTLED_RETRIES_IN_PLACE = 3


@dataclass
class SendReport:
    claimed: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    next_due: Any = None


class Sender:
    """One per worker process: the lanes' senders, limiter, region health and caches."""

    def __init__(
        self,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession],
        transport: Transport,
        limiter: RateLimiter,
        health: RegionHealth,
        pauser: Pauser | None = None,
    ) -> None:
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.engine = sessionmaker.kw["bind"]
        self.transport = transport
        self.limiter = limiter
        self.health = health
        self.states = CampaignStates(sessionmaker)
        self._queues: dict[str, asyncio.Queue[LaneItem]] = {
            CAMPAIGN_LANE: asyncio.Queue(),
            TRANSACTIONAL_LANE: asyncio.Queue(),
        }
        self._pool_sizes = {
            CAMPAIGN_LANE: settings.send_concurrency,
            TRANSACTIONAL_LANE: settings.transactional_concurrency,
        }
        self._consumers: dict[str, list[asyncio.Task[None]]] = {}
        self.guard = SendGuard(settings, limiter, health, pauser)
        self.plans = Plans(settings, self._read)
        # how long the writes of the send path keep retrying (half a lease)
        self.write_deadline = settings.lease_seconds / 2
        self.stopping = False

    def stop_claiming(self) -> None:
        """Graceful stop (SIGTERM): claim nothing more. Messages claimed but not yet
        called go back to ``queued`` at once; SES calls in flight finish and their
        outcomes are recorded; each batch then ends as usual (its job hands the rest of
        its range to another worker)."""
        self.stopping = True

    async def _read(self, read: Callable[[AsyncSession], Awaitable[T]]) -> T:
        async def once() -> T:
            async with self.sessionmaker() as session:
                return await invalidating(session, lambda: read(session))

        return await retry_db(once, self.write_deadline)

    async def _write(self, write: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """One statement on a bare connection in autocommit (the hot path's claims and
        flushes): the statement is its own transaction, one round trip where BEGIN, the
        statement and COMMIT took three (a transactional message waits for two of these
        writes before its SES call, each round trip a turn of a busy event loop).
        ``write`` must run a single statement."""
        async with self.engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            return await invalidating(conn, lambda: write(conn))

    async def warm(self, connections: int) -> None:
        """At start-up: ``connections`` of the pool opened and the send path's statements
        prepared on each (:func:`mailer.sending.warmup.prepare_connections`)."""
        await prepare_connections(self.engine, connections)

    async def send_range(self, campaign_id: int, lo: int, hi: int) -> SendReport:
        """Send the due, queued messages of ids [lo, hi] of a sending campaign."""
        report = SendReport()
        token = uuid.uuid4().hex
        lease = self.settings.lease_seconds
        claimed: list[Claimed] = []
        if not self.stopping:
            async with transaction(self.sessionmaker) as session:
                claimed = await repo.claim(session, campaign_id, lo, hi, token, lease, hi - lo + 1)
        report.claimed = len(claimed)
        if claimed:
            self.states.watch(campaign_id)
            renewer = asyncio.create_task(self._renew(token))
            try:
                work = [(m, await self.plans.for_campaign(campaign_id, m.variant)) for m in claimed]
                await self._send_claimed(work, token, report, CAMPAIGN_LANE)
            finally:
                renewer.cancel()
                self.states.unwatch(campaign_id)
        report.next_due = await self._read(
            lambda session: repo.next_due(session, campaign_id, lo, hi)
        )
        return report

    async def send_messages(self, ids: list[int]) -> SendReport:
        """Send the due, queued transactional messages among ``ids`` (test sends too)."""
        report = SendReport()
        token = uuid.uuid4().hex

        claimed: list[Claimed] = []
        if not self.stopping:
            # a bare connection: fewer round trips than a session, each one counts here
            claimed = await self._write(
                lambda conn: repo.claim_messages(conn, ids, token, self.settings.lease_seconds)
            )
        report.claimed = len(claimed)
        if claimed:
            renewer = asyncio.create_task(self._renew(token))
            try:
                work = [(m, await self.plans.for_message(m)) for m in claimed]
                await self._send_claimed(work, token, report, TRANSACTIONAL_LANE)
            finally:
                renewer.cancel()
        report.next_due = await self._read(lambda session: repo.next_due_messages(session, ids))
        return report

    async def _send_claimed(
        self, work: list[tuple[Claimed, SendPlan]], token: str, report: SendReport, lane: str
    ) -> None:
        """Suppression, then the lane's senders; outcomes group-committed as they come."""
        claimed = [m for m, _ in work]

        async def flush_marks(ids: list[int]) -> set[int]:
            async def once() -> set[int]:
                # a bare connection: these flushes are the hot path, an ORM session is not
                return await self._write(lambda conn: repo.mark_sending(conn, ids, token))

            return await retry_db(once, self.write_deadline)

        async def flush_outcomes(batch: list[Outcome]) -> int:
            # a lost record means mail SES accepted is sent again once the lease lapses:
            # try hard. Running it again is safe: applied rows no longer carry our token.
            async def once() -> int:
                return await self._write(lambda conn: outcomes.record(conn, batch, token))

            return await retry_db(once, self.write_deadline)

        # marks wait 5 ms, outcomes 50 ms: with SES latency the senders come back one by
        # one, and a flush per few messages would cost more than the calls; the wait is
        # hidden by the other senders (an outcome's wait only holds its batch's end). A
        # transactional message has few companions and waits for its own mark: 1 ms.
        mark_delay = 0.005 if lane == CAMPAIGN_LANE else 0.001
        marks: GroupWriter[int, set[int]] = GroupWriter(
            flush_marks, delay=mark_delay, max_items=200
        )
        records: GroupWriter[Outcome, int] = GroupWriter(flush_outcomes, delay=0.05, max_items=500)
        contacts, suppressed = await self._screen([(m, p) for m, p in work if m.suppressed is None])
        await self.health.refresh()

        pending: list[asyncio.Future[Any]] = []
        for message, plan in work:
            if message.suppressed is None:
                contact = contacts.get(message.contact_id) if message.contact_id else None
                is_suppressed = message.email in suppressed[plan.mail_class]
            else:  # screened by its claim
                contact, is_suppressed = message.contact, message.suppressed
            if contact is None and plan.campaign_id is not None:
                pending.append(
                    records.add(Outcome(message.id, "cancelled", error="contact erased"))
                )
            elif is_suppressed or (
                # unsubscribing stops marketing mail only; a recipient need not be a contact
                plan.mail_class == "marketing"
                and contact is not None
                and contact.status != "subscribed"
            ):
                pending.append(records.add(Outcome(message.id, "suppressed")))
            else:
                done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
                self._queues[lane].put_nowait(
                    LaneItem(plan, message, contact, token, marks, records, done)
                )
                pending.append(done)
        self._ensure_pool(lane)
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

    async def _screen(
        self, work: list[tuple[Claimed, SendPlan]]
    ) -> tuple[dict[int, Any], dict[str, set[str]]]:
        """Contacts by id and suppressed addresses by mail class, for claimed messages."""
        if not work:
            return {}, {}
        contacts = await self._read(
            lambda session: repo.contacts(
                session, [m.contact_id for m, _ in work if m.contact_id is not None]
            )
        )
        suppressed: dict[str, set[str]] = {}
        for mail_class in {plan.mail_class for _, plan in work}:
            emails = [m.email for m, p in work if p.mail_class == mail_class]
            suppressed[mail_class] = await self._read(
                functools.partial(_suppressed, emails=emails, mail_class=mail_class)
            )
        return contacts, suppressed

    def _ensure_pool(self, lane: str) -> None:
        """Long-lived senders per lane and process: ``send_concurrency`` SES calls in flight
        for campaigns, ``transactional_concurrency`` for transactional mail."""
        if not self._consumers.get(lane):
            self._consumers[lane] = [
                asyncio.create_task(self._consume(self._queues[lane]), name=f"{lane}-sender-{i}")
                for i in range(self._pool_sizes[lane])
            ]

    async def _consume(self, queue: asyncio.Queue[LaneItem]) -> None:
        while True:
            item = await queue.get()
            try:
                outcome = await self._send_one(
                    item.plan, item.message, item.contact, item.token, item.marks
                )
            except Exception as exc:  # noqa: BLE001 - the batch reports it; the lease recovers
                if not item.done.done():
                    item.done.set_exception(exc)
                continue
            if outcome is None:
                item.done.set_result(None)
                continue
            if outcome.outcome in ("sent", "failed"):
                await self.guard.note(item.plan, outcome)
            # written as soon as known: the window of "accepted, not recorded" stays short;
            # the batch waits for the flush, this sender moves on
            flushed = item.records.add(outcome)
            flushed.add_done_callback(functools.partial(settle, item.done, outcome=outcome))

    def _may_send(self, plan: SendPlan) -> bool:
        """Nothing goes once the worker stops; campaign mail goes while its campaign is
        sending, other mail while its class is not held by an account error."""
        if self.stopping or plan.mail_class in self.guard.blocked:
            return False
        if plan.campaign_id is not None:
            return self.states.is_sending(plan.campaign_id)
        return self.guard.held_for(plan.mail_class) is None

    def _not_now(self, plan: SendPlan, message: Claimed) -> Outcome:
        # back to the queue; transactional mail comes back when its class's hold ends,
        # a blocked class's mail when the check may have found its set
        delay = None if plan.campaign_id is not None else self.guard.held_for(plan.mail_class)
        if plan.mail_class in self.guard.blocked and not self.stopping:
            delay = self.settings.account_hold_seconds
        return Outcome(message.id, "release", delay=delay)

    async def _send_one(
        self,
        plan: SendPlan,
        message: Claimed,
        contact: Any,
        token: str,
        marks: GroupWriter[int, set[int]],
    ) -> Outcome | None:
        # one of the pool's senders: the pool size bounds the calls in flight
        campaign_id = plan.campaign_id
        if campaign_id is not None and not self.states.is_fresh(campaign_id):
            # a late poll is no reason to hand the message back: wait for the next one
            await self.states.wait_fresh(campaign_id, 2 * self.states.stale_after)
        if not self._may_send(plan):
            return self._not_now(plan, message)
        if message.attempts >= self.settings.transient_max_attempts:
            # claimed that often without an outcome: each holder stopped (killed, or its
            # lease lapsed) before it was done. A message that takes workers down with it
            # is not claimed again and again: it fails here, before its render
            return Outcome(
                message.id,
                "failed",
                error=f"gave up after {message.attempts} attempts: its workers stopped"
                " holding it (lease lapsed) without an outcome",
            )
        try:
            email = await build_email(self.settings, plan, message, contact)
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
        throttled = 0
        while True:
            await self.limiter.acquire(region, plan.mail_class)
            # the pause or the region's breaker may have come while we waited: no SES
            # call then (a release from ``sending`` gives the attempt back). Nothing that
            # waits may stand between the fresh token and the call.
            if not self._may_send(plan):
                return self._not_now(plan, message)
            if self.health.is_down(region):
                return Outcome(message.id, "release")
            call_started = datetime.now(UTC)
            try:
                sid = await self.transport.send(region, email)
            except SendError as exc:
                if (
                    exc.kind is ErrorKind.THROTTLED
                    and campaign_id is None
                    and throttled < THROTTLED_RETRIES_IN_PLACE
                ):
                    # transactional mail does not go back to the queue for a second or
                    # so: the limiter slows the region down, and the message asks it
                    # again for a slot, ahead of marketing
                    throttled += 1
                    metrics.SENDS.labels(plan.mail_class, region, "throttled").inc()
                    await self.guard.slow_down(region)
                    continue
                return await self.guard.failed(plan, message, region, exc, call_started)
            self.health.success(region)
            return Outcome(message.id, "sent", sid=sid, region=region)

    async def _renew(self, token: str) -> None:
        interval = self.settings.lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            try:
                async with transaction(self.sessionmaker) as session:
                    await repo.renew_lease(session, token, self.settings.lease_seconds)
            except Exception as exc:  # noqa: BLE001 - a missed renewal only shortens the lease
                log.warning("lease_renewal_failed", error=short_error(exc))

    async def close(self) -> None:
        for tasks in self._consumers.values():
            for task in tasks:
                task.cancel()
        self._consumers.clear()
        await self.states.close()


async def _suppressed(session: AsyncSession, *, emails: list[str], mail_class: str) -> set[str]:
    return await suppressions.suppressed(session, emails, mail_class)
