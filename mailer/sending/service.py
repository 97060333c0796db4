"""The one send path of every message: claim → suppression → render → rate token → SES →
record.

Work is claimed two ways: a campaign's id range (``send_batch``) or transactional messages
by id (``send_messages``, test sends of campaigns included); from there both kinds share
everything: a ``SendPlan`` each, one ``build``, leases, group commits, suppression, the
rate limiter, regions and error handling. Each worker process has two lanes of senders
(campaign, transactional), so a campaign's waiting items never queue in front of a
transactional message. Many SES calls are in flight at once; state changes are
group-committed: a message is marked ``sending`` (in a shared statement) just before its
SES call, and outcomes are written in batches with the campaign counters.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

import structlog
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
)

from mailer.config import Settings
from mailer.db import transaction
from mailer.deliverability import headers as deliverability
from mailer.deliverability import required
from mailer.ops import metrics
from mailer.ratelimit.limiter import RateLimiter
from mailer.secrets import signing_key
from mailer.sending import repository as repo
from mailer.sending.batching import GroupWriter
from mailer.sending.regions import RegionHealth
from mailer.sending.repository import Claimed, Outcome
from mailer.sending.transport import ErrorKind, OutboundEmail, SendError, Transport
from mailer.suppression.tokens import make_token
from mailer.template.content import mail_headers
from mailer.template.render import (
    CompiledTemplate,
    RenderError,
    compiled_off_loop,
    message_context,
    render_off_loop,
)

log = structlog.get_logger(__name__)

T = TypeVar("T")

# a throttled call of transactional mail asks the limiter for another slot at once, this
# many times, before the message goes back to the queue like campaign mail (0.5-1.5 s)
THROTTLED_RETRIES_IN_PLACE = 3


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


@dataclass(slots=True, frozen=True)
class CampaignRef:
    """The campaign a message renders for: its mail, or a test send of it."""

    id: int
    name: str


@dataclass(slots=True)
class SendPlan:
    """What sending a message needs besides its recipient: one per campaign (cached per
    process: it never changes once sent), one per transactional message."""

    mail_class: str
    from_address: str
    reply_to: str | None
    regions: list[str]
    template: CompiledTemplate
    configuration_set: str | None
    campaign: CampaignRef | None  # the template's ``campaign``; None for transactional mail
    test: bool = False  # a test send of ``campaign``: transactional lane, not its stats

    @property
    def campaign_id(self) -> int | None:
        """The campaign whose mail this is (not a test send of it): its state rules."""
        return self.campaign.id if self.campaign is not None and not self.test else None


# the two lanes of a worker process: each its own queue and senders, so a campaign's
# thousands of waiting items never stand in front of a transactional message
CAMPAIGN_LANE = "campaign"
TRANSACTIONAL_LANE = "transactional"


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
    sending: a pause must stop SES calls within 2 s even when polling stalls. The poll has
    its own connection: taken from the pool, it waited behind the send path's flushes on
    a loaded worker, the view went stale and whole batches were handed back unsent. A
    sender that finds the view stale waits for the next poll (:meth:`wait_fresh`) before
    it gives its message back.
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        refresh: float = 0.25,
        stale_after: float = 1.0,
    ):
        self.engine: AsyncEngine = sessionmaker.kw["bind"]
        self.refresh = refresh
        self.stale_after = stale_after
        self._status: dict[int, str] = {}
        self._seen_at: dict[int, float] = {}
        self._watching: dict[int, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._conn: AsyncConnection | None = None
        self._polled = asyncio.Event()

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

    def is_fresh(self, campaign_id: int) -> bool:
        return time.monotonic() - self._seen_at.get(campaign_id, 0.0) < self.stale_after

    def is_sending(self, campaign_id: int) -> bool:
        return self.is_fresh(campaign_id) and self._status.get(campaign_id) == "sending"

    async def wait_fresh(self, campaign_id: int, within: float) -> None:
        """Wait (at most ``within`` seconds) until the view of ``campaign_id`` is fresh."""
        deadline = time.monotonic() + within
        while not self.is_fresh(campaign_id) and campaign_id in self._watching:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._polled.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._polled.wait(), left)

    async def poll(self) -> None:
        ids = list(self._watching)
        if not ids:
            return
        asked = time.monotonic()  # the answer is as old as the question
        if self._conn is None:
            conn = await self.engine.connect()
            # no transaction held open between polls
            self._conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        try:
            rows = await self._conn.execute(
                text("SELECT id, status FROM campaigns WHERE id = ANY(CAST(:ids AS bigint[]))"),
                {"ids": ids},
            )
        except Exception:
            conn, self._conn = self._conn, None
            with contextlib.suppress(Exception):
                await conn.invalidate()
            raise
        for row in rows:
            self._status[row.id] = row.status
            self._seen_at[row.id] = asked
        self._polled.set()

    async def _run(self) -> None:
        while self._watching:
            try:
                await self.poll()
            except Exception as exc:  # noqa: BLE001 - keep the last view; sends stop if stale
                log.warning("campaign_states_poll_failed", error=_short(exc))
            await asyncio.sleep(self.refresh)
        await self._release()

    async def _release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        await self._release()


async def _retry_db(write: Callable[[], Awaitable[T]], deadline: float) -> T:
    """Run a short transaction, again after a database error (a deadlock, a restart, a
    failover) until ``deadline`` seconds have passed; then the error is raised.

    The send path gives its writes half a lease: a record lost for good means mail SES
    accepted is sent again once the lease lapses, so riding out a failover is worth it.
    """
    give_up = time.monotonic() + deadline
    attempt = 0
    while True:
        try:
            return await write()
        except (DBAPIError, OSError) as exc:
            attempt += 1
            pause = min(0.05 * 2 ** min(attempt, 10), 1.0) * (0.5 + random.random())
            if time.monotonic() + pause > give_up:
                raise
            log.warning("db_write_retry", attempt=attempt, error=_short(exc))
            await asyncio.sleep(pause)


def _short(exc: BaseException) -> str:
    """An error for a log line: a traceback (rendered with its locals) of a database that
    is away would hold the event loop, and the SES calls in flight, for seconds."""
    return f"{type(exc).__name__}: {exc}"[:300]


async def _invalidating(conn: AsyncConnection | AsyncSession, run: Callable[[], Awaitable[T]]) -> T:
    """``run()``; after a failure the connection is dropped, not pooled again: after a
    restart its protocol state may be broken ("another operation is in progress"), and
    a retry must not get it back."""
    try:
        return await run()
    except (DBAPIError, OSError):
        with contextlib.suppress(Exception):
            await conn.invalidate()
        raise


@dataclass
class BatchReport:
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
        self._queues: dict[str, asyncio.Queue[_Item]] = {
            CAMPAIGN_LANE: asyncio.Queue(),
            TRANSACTIONAL_LANE: asyncio.Queue(),
        }
        self._pool_sizes = {
            CAMPAIGN_LANE: settings.send_concurrency,
            TRANSACTIONAL_LANE: settings.transactional_concurrency,
        }
        self._consumers: dict[str, list[asyncio.Task[None]]] = {}
        self.pauser = pauser
        self.errors = ErrorRate(settings.error_stop_window, settings.error_stop_failures)
        self._class_paused_at: dict[str, float] = {}
        self._plans: dict[int, SendPlan] = {}
        self._slowed: dict[str, float] = {}
        self._held: dict[str, float] = {}  # mail class -> until when (monotonic)
        # mail class -> why it may not send: its configuration set is missing
        # (mailer.sending.configuration_sets checks at start and every account poll)
        self.blocked: dict[str, str] = {}
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
                return await _invalidating(session, lambda: read(session))

        return await _retry_db(once, self.write_deadline)

    async def _write(self, write: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """One statement on a bare connection in autocommit (the hot path's claims and
        flushes): the statement is its own transaction, one round trip where BEGIN, the
        statement and COMMIT took three (a transactional message waits for two of these
        writes before its SES call, each round trip a turn of a busy event loop).
        ``write`` must run a single statement."""
        async with self.engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            return await _invalidating(conn, lambda: write(conn))

    async def warm(self, connections: int) -> None:
        """At start-up: open ``connections`` of the pool and prepare the send path's
        statements on each (with no ids: nothing is claimed or written), so that the first
        messages after a start wait neither for a connection to be set up nor for their
        statements to be prepared (traced: a transactional process' first claims and
        marks took 100-170 ms, the later ones 5 ms). Errors are left to the first send."""

        async def prepare(conn: AsyncConnection) -> None:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await repo.claim_messages(conn, [], "warm-up", 1.0)
            await repo.mark_sending(conn, [], "warm-up")
            await repo.record(conn, [], "warm-up")

        opened = await asyncio.gather(
            *(self.engine.connect() for _ in range(connections)), return_exceptions=True
        )
        conns = [c for c in opened if isinstance(c, AsyncConnection)]
        try:
            await asyncio.gather(*(prepare(c) for c in conns), return_exceptions=True)
        finally:
            for conn in conns:
                with contextlib.suppress(Exception):
                    await conn.close()  # back to the pool, open and prepared

    async def plan(self, campaign_id: int) -> SendPlan:
        plan = self._plans.get(campaign_id)
        if plan is None:
            row = await self._read(
                lambda session: _one(session.execute(_PLAN, {"id": campaign_id}))
            )
            template = await compiled_off_loop(
                self.settings.templates_dir, row.version_id, row.subject, row.html, row.text
            )
            plan = SendPlan(
                mail_class=row.mail_class,
                from_address=row.from_address,
                reply_to=row.reply_to,
                regions=list(row.regions) or list(self.settings.regions),
                template=template,
                configuration_set=self.settings.configuration_sets.get(row.mail_class),
                campaign=CampaignRef(row.id, row.name),
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
        claimed: list[Claimed] = []
        if not self.stopping:
            async with transaction(self.sessionmaker) as session:
                claimed = await repo.claim(session, campaign_id, lo, hi, token, lease, hi - lo + 1)
        report.claimed = len(claimed)
        if claimed:
            self.states.watch(campaign_id)
            renewer = asyncio.create_task(self._renew(token))
            try:
                plan = await self.plan(campaign_id)
                await self._send_claimed([(m, plan) for m in claimed], token, report, CAMPAIGN_LANE)
            finally:
                renewer.cancel()
                self.states.unwatch(campaign_id)
        report.next_due = await self._read(
            lambda session: repo.next_due(session, campaign_id, lo, hi)
        )
        return report

    async def send_messages(self, ids: list[int]) -> BatchReport:
        """Send the due, queued transactional messages among ``ids`` (test sends too)."""
        report = BatchReport()
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
                work = [(m, await self.message_plan(m)) for m in claimed]
                await self._send_claimed(work, token, report, TRANSACTIONAL_LANE)
            finally:
                renewer.cancel()
        report.next_due = await self._read(lambda session: repo.next_due_messages(session, ids))
        return report

    async def message_plan(self, m: Claimed) -> SendPlan:
        """The plan of a transactional message: its own content, sender and class."""
        # inline content (no version) is compiled once per distinct content
        template = await compiled_off_loop(
            self.settings.templates_dir,
            m.template_version_id,
            m.subject or "",
            m.html or "",
            m.text,
        )
        campaign = None
        regions = list(self.settings.regions)
        if m.test_campaign_id is not None and m.test_campaign is not None:
            name, tested_regions = m.test_campaign
            campaign = CampaignRef(m.test_campaign_id, name)
            regions = tested_regions or regions
        return SendPlan(
            mail_class=m.mail_class,
            from_address=m.from_address or "",
            reply_to=m.reply_to,
            regions=regions,
            template=template,
            configuration_set=self.settings.configuration_sets.get(m.mail_class),
            campaign=campaign,
            test=m.test_campaign_id is not None,
        )

    async def _send_claimed(
        self, work: list[tuple[Claimed, SendPlan]], token: str, report: BatchReport, lane: str
    ) -> None:
        """Suppression, then the lane's senders; outcomes group-committed as they come."""
        claimed = [m for m, _ in work]

        async def flush_marks(ids: list[int]) -> set[int]:
            async def once() -> set[int]:
                # a bare connection: these flushes are the hot path, an ORM session is not
                return await self._write(lambda conn: repo.mark_sending(conn, ids, token))

            return await _retry_db(once, self.write_deadline)

        async def flush_outcomes(outcomes: list[Outcome]) -> int:
            # a lost record means mail SES accepted is sent again once the lease lapses:
            # try hard. Running it again is safe: applied rows no longer carry our token.
            async def once() -> int:
                return await self._write(lambda conn: repo.record(conn, outcomes, token))

            return await _retry_db(once, self.write_deadline)

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
                    _Item(plan, message, contact, token, marks, records, done)
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

    async def _consume(self, queue: asyncio.Queue[_Item]) -> None:
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
                await self._note(item.plan, outcome)
            # written as soon as known: the window of "accepted, not recorded" stays short;
            # the batch waits for the flush, this sender moves on
            flushed = item.records.add(outcome)
            flushed.add_done_callback(functools.partial(_settle, item.done, outcome=outcome))

    async def build(self, plan: SendPlan, message: Claimed, contact: Any) -> OutboundEmail:
        """Render one message of either kind; RenderError fails that message only.

        Campaign mail gets the ``campaign`` context and tag; transactional mail and test
        sends the request's ``data`` (a test send the ``campaign`` context too).
        """
        token = make_token(signing_key(self.settings), message.id)
        public = self.settings.public_url.rstrip("/")
        unsubscribe_url = f"{public}/unsubscribe/{token}"
        campaign = None
        if plan.campaign is not None:
            campaign = {"id": plan.campaign.id, "name": plan.campaign.name}
        context = message_context(
            message.email,
            contact,
            message.data,
            unsubscribe_url,
            self.settings.postal_address,
            campaign,
        )
        # on the loop for a short slice, else in a render thread (template.render)
        rendered = await render_off_loop(plan.template, context)
        headers = mail_headers(
            plan.mail_class,
            unsubscribe_url,
            deliverability.unsubscribe_mailto(self.settings, token),
        )
        if plan.campaign is not None and required.is_bulk(plan.mail_class):
            headers["List-Id"] = deliverability.list_id(
                plan.campaign.id, plan.campaign.name, plan.from_address
            )
        if message.headers:
            headers.update(message.headers)
        tags = {"mail_class": plan.mail_class}
        if plan.campaign_id is not None:
            tags["campaign_id"] = str(plan.campaign_id)
        tags["message_id"] = str(message.id)
        if plan.test:
            tags["test"] = "true"
        if message.tags:
            tags.update(message.tags)
        return OutboundEmail(
            to=message.email,
            from_address=plan.from_address,
            subject=rendered.subject,
            html=rendered.html,
            text=rendered.text,
            reply_to=plan.reply_to,
            headers=headers,
            tags=tags,
            configuration_set=plan.configuration_set,
        )

    def _may_send(self, plan: SendPlan) -> bool:
        """Nothing goes once the worker stops; campaign mail goes while its campaign is
        sending, other mail while its class is not held by an account error."""
        if self.stopping or plan.mail_class in self.blocked:
            return False
        if plan.campaign_id is not None:
            return self.states.is_sending(plan.campaign_id)
        return self._held_for(plan.mail_class) is None

    def _held_for(self, mail_class: str) -> float | None:
        """Seconds left of this process' hold on ``mail_class``'s non-campaign mail."""
        left = self._held.get(mail_class, 0.0) - time.monotonic()
        return left if left > 0 else None

    def _not_now(self, plan: SendPlan, message: Claimed) -> Outcome:
        # back to the queue; transactional mail comes back when its class's hold ends,
        # a blocked class's mail when the check may have found its set
        delay = None if plan.campaign_id is not None else self._held_for(plan.mail_class)
        if plan.mail_class in self.blocked and not self.stopping:
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
            email = await self.build(plan, message, contact)
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
                    await self._slow_down(region)
                    continue
                return await self._failed(plan, message, region, exc, call_started)
            self.health.success(region)
            return Outcome(message.id, "sent", sid=sid, region=region)

    async def _failed(
        self, plan: SendPlan, message: Claimed, region: str, exc: SendError, call_started: datetime
    ) -> Outcome:
        reason = exc.reason[:1000]
        if exc.kind is ErrorKind.THROTTLED:
            await self._slow_down(region)
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
            await self._pause_class(plan.mail_class, reason, call_started)
            delay = 1.0
            if plan.campaign_id is None:
                delay = self.settings.account_hold_seconds * (0.5 + random.random())
                self._held[plan.mail_class] = time.monotonic() + delay
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

    async def _slow_down(self, region: str) -> None:
        """SES throttled a call: slow the region's limiter down (once per 0.2 s here; the
        limiter cuts at most once a second across processes)."""
        now = time.monotonic()
        if now - self._slowed.get(region, 0.0) > 0.2:
            self._slowed[region] = now
            await self.limiter.slow_down(region)

    async def _pause_class(self, mail_class: str, reason: str, call_started: datetime) -> None:
        # the calls in flight all come back with the same answer: one pause will do
        now = time.monotonic()
        if self.pauser is None or now - self._class_paused_at.get(mail_class, -1.0) < 0.5:
            return
        self._class_paused_at[mail_class] = now
        try:
            await self.pauser.pause_class(mail_class, reason, call_started)
        except Exception as exc:  # noqa: BLE001 - the next account error tries again
            self._class_paused_at.pop(mail_class, None)
            log.warning("pause_class_failed", mail_class=mail_class, error=_short(exc))

    async def _note(self, plan: SendPlan, outcome: Outcome) -> None:
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
            log.warning("error_rate_stop_failed", campaign_id=campaign_id, error=_short(exc))

    async def _renew(self, token: str) -> None:
        interval = self.settings.lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            try:
                async with transaction(self.sessionmaker) as session:
                    await repo.renew_lease(session, token, self.settings.lease_seconds)
            except Exception as exc:  # noqa: BLE001 - a missed renewal only shortens the lease
                log.warning("lease_renewal_failed", error=_short(exc))

    async def close(self) -> None:
        for tasks in self._consumers.values():
            for task in tasks:
                task.cancel()
        self._consumers.clear()
        await self.states.close()


@dataclass(slots=True)
class _Item:
    """One message handed to the sender pool, and where its outcome goes."""

    plan: SendPlan
    message: Claimed
    contact: Any
    token: str
    marks: GroupWriter[int, set[int]]
    records: GroupWriter[Outcome, int]
    done: asyncio.Future[Any]


async def _suppressed(session: AsyncSession, *, emails: list[str], mail_class: str) -> set[str]:
    return await repo.suppressed(session, emails, mail_class)


async def _one(result: Awaitable[Any]) -> Any:
    return (await result).one()


def _settle(done: asyncio.Future[Any], flushed: asyncio.Future[Any], *, outcome: Outcome) -> None:
    if done.done():
        return
    if flushed.cancelled():
        done.cancel()
    elif flushed.exception() is not None:
        done.set_exception(flushed.exception())  # type: ignore[arg-type]
    else:
        done.set_result(outcome)
