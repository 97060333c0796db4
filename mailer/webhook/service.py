"""The feedback loop: verify → store once → answer → process in the events worker.

The one place events take effect is :func:`process_batch` (and the per-type statements of
``mailer.webhook.repository``); code that reacts to events (reputation, contact history)
hooks in there.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import orjson
import structlog
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from mailer.config import Settings, get_settings
from mailer.db import HeldConnections
from mailer.deliverability import inbound
from mailer.errors import MailerError
from mailer.ops import metrics
from mailer.queues import EVENTS_QUEUE
from mailer.reputation import service as reputation
from mailer.secrets import verifying_keys
from mailer.sending.batching import GroupWriter
from mailer.webhook import repository as repo
from mailer.webhook.ses import EventRow, NotAnEvent, read
from mailer.webhook.sns import SnsMessage, check_url

log = structlog.get_logger(__name__)

PROCESS_JOB = "process_notifications"
# set while a drain job is queued and has not started: further notifications need no job
WAKE_KEY = "mailer:events:wake"
WAKE_TTL_S = 5
# the order types are applied within a batch; statuses only move forward whatever it is
APPLY_ORDER = (
    "send",
    "delivery",
    "delivery_delay",
    "open",
    "click",
    "bounce",
    "complaint",
    "reject",
    "rendering_failure",
    "subscription",
)


class Unavailable(MailerError):
    """The notification could not be stored: 503, so SNS delivers it again."""

    status_code = 503
    code = "unavailable"


class ConfirmFailed(MailerError):
    status_code = 502
    code = "subscription_not_confirmed"


def without_nul(value: Any) -> Any:
    """``value`` (parsed JSON) with each NUL in its strings and keys made U+FFFD: PostgreSQL's
    jsonb and text hold no NUL, and a notification must not be lost for one."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, list):
        return [without_nul(v) for v in value]
    if isinstance(value, dict):
        return {without_nul(k): without_nul(v) for k, v in value.items()}
    return value


async def wake(redis: Any) -> None:
    """Make sure a drain job is coming (one per burst, not one per notification).

    The flag is cleared by the job as it starts, before it reads, so a notification
    committed before this call is either seen by the running job or wakes a new one.
    """
    try:
        if await redis.set(WAKE_KEY, b"1", nx=True, ex=WAKE_TTL_S):
            await redis.enqueue_job(PROCESS_JOB, _queue_name=EVENTS_QUEUE)
    except (RedisError, OSError) as exc:
        # stored is what counts: the events worker's reconciler picks the row up
        log.warning("events_wake_failed", error=repr(exc))


class Waker:
    """:func:`wake` after commits, at most one call at a time and one per ``interval``.

    A commit asks for a wake-up and goes on (its answer does not wait for Redis); a commit
    that asks while a call is under way gets one more call after it, which starts after
    that commit, so no stored notification is left without a wake-up that follows it.
    """

    def __init__(self, redis: Any, interval: float = 0.05) -> None:
        self.redis = redis
        self.interval = interval
        self._again = False
        self._task: asyncio.Task[None] | None = None

    def request(self) -> None:
        if self._task is not None:
            self._again = True
            return
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        try:
            while True:
                self._again = False
                await wake(self.redis)
                if not self._again:
                    return
                await asyncio.sleep(self.interval)
        finally:
            self._task = None

    async def close(self) -> None:
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)


# a held connection a restart or failover broke (asyncpg may only notice as "another
# operation is in progress", its protocol state left behind): one more try, afresh
_STALE = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    asyncpg.exceptions.OperatorInterventionError,
    ConnectionResetError,
    BrokenPipeError,
)
_NOT_STORED = (
    SQLAlchemyError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
    TimeoutError,
)


@dataclass(frozen=True, slots=True)
class Stored:
    """What one flush did: the MessageIds stored by it (id → type), those it could not."""

    new: dict[str, str]
    failed: frozenset[str] = frozenset()


class NotificationStore:
    """Stores verified notifications once, for many concurrent requests at a time.

    Group commit: the requests that arrive while a flush is under way go together in the
    next one, ONE ``INSERT … ON CONFLICT DO NOTHING RETURNING`` for all of them, so the
    batch grows with the load and an idle API does not wait. The statement runs on a held
    driver connection outside BEGIN (``mailer.db.HeldConnections``): its own transaction,
    committed when it answers, and each request is answered only after that. A flush that
    fails fails every request in it (503, SNS delivers again), except that a statement the
    database refuses for its data is split so only the notification at fault fails. A
    retry after a lost answer may find its rows stored already: they are then not new
    here, and the events worker's reconciler wakes for them.

    One wake-up of the events worker per burst that stored a new notification
    (:class:`Waker`), after the commit; the answers do not wait for it.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        arq: Any,
        *,
        max_in_flight: int = 2,
        max_items: int = 500,
    ) -> None:
        self.connections = HeldConnections(engine)
        self.waker = Waker(arq)
        self.writer: GroupWriter[tuple[str, str, str, bytes], Stored] = GroupWriter(
            self._flush, delay=0.0, max_items=max_items, max_in_flight=max_in_flight
        )

    async def store(self, message: SnsMessage, raw: bytes) -> bool:
        """True when this SNS MessageId was new (False: an SNS retry of a stored one)."""
        if b"\\u0000" in raw:  # verified as it came; stored as jsonb can hold it
            raw = orjson.dumps(without_nul(orjson.loads(raw)))
        item = (message.message_id, message.topic_arn, message.type, raw)
        stored = await self.writer.submit(item)
        if message.message_id in stored.failed:
            raise Unavailable("the notification could not be stored; deliver it again")
        return message.message_id in stored.new

    async def _flush(self, items: list[tuple[str, str, str, bytes]]) -> Stored:
        try:
            stored = Stored(await self._insert(items))
        except _NOT_STORED as exc:
            refused = isinstance(exc, asyncpg.PostgresError) and not isinstance(exc, _STALE)
            if len(items) == 1 or not refused:
                log.error("sns_store_failed", error=repr(exc)[:300], notifications=len(items))
                return Stored({}, frozenset(i[0] for i in items))
            stored = await self._one_by_one(items)
        if "Notification" in stored.new.values():
            self.waker.request()
        return stored

    async def _one_by_one(self, items: list[tuple[str, str, str, bytes]]) -> Stored:
        new: dict[str, str] = {}
        failed: set[str] = set()
        for item in items:
            try:
                new.update(await self._insert([item]))
            except _NOT_STORED as exc:
                log.error("sns_store_failed", error=repr(exc)[:300], message_id=item[0])
                failed.add(item[0])
        return Stored(new, frozenset(failed))

    async def _insert(self, items: list[tuple[str, str, str, bytes]]) -> dict[str, str]:
        try:
            return await self._insert_once(items)
        except _STALE as exc:
            log.warning("sns_store_retry", error=repr(exc)[:300])
            return await self._insert_once(items)

    async def _insert_once(self, items: list[tuple[str, str, str, bytes]]) -> dict[str, str]:
        async with self.connections.driver() as driver:
            return await repo.store(driver, items)

    async def close(self) -> None:
        await self.writer.drain()
        await self.waker.close()
        await self.connections.close()


async def receive(
    store: NotificationStore, http: httpx.AsyncClient, message: SnsMessage, raw: bytes
) -> bool:
    """Store a verified SNS message once; True when it was new.

    A SubscriptionConfirmation (its topic is allowed: verification checked it) is confirmed
    by GETting its verified SubscribeURL before it is stored.
    """
    if message.type == "SubscriptionConfirmation":
        await confirm(http, message.body["SubscribeURL"])
    return await store.store(message, raw)


async def confirm(http: httpx.AsyncClient, url: str) -> None:
    check_url(url, path=None)
    try:
        answer = await http.get(url, timeout=10.0, follow_redirects=False)
    except httpx.HTTPError as exc:
        # the details are for the log; the answer says no more than this
        log.warning("sns_subscription_confirm_failed", error=type(exc).__name__)
        raise ConfirmFailed("confirming the subscription failed: SNS did not answer") from exc
    if answer.status_code != 200:
        raise ConfirmFailed(f"confirming the subscription answered {answer.status_code}")
    log.info("sns_subscription_confirmed", url=url.split("?", 1)[0])


# -- processing (events worker) --------------------------------------------------------


UNMATCHED_WAIT_S = 60.0
RETRY_S = 5.0


@dataclass
class BatchReport:
    notifications: int = 0
    deferred: int = 0
    events: int = 0
    stored: int = 0
    unmatched: int = 0
    errors: int = 0
    by_type: dict[str, int] = field(default_factory=dict)


def events_of(row: Any, received: list[dict[str, Any]] | None = None) -> list[EventRow]:
    """The SES events of one stored notification (none for confirmations); a message
    SES received (no event) goes into ``received``."""
    if row.type != "Notification":
        return []
    body = row.body if isinstance(row.body, dict) else orjson.loads(row.body)
    text = body.get("Message") or ""
    try:
        message = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise NotAnEvent("the message is not JSON") from exc
    if "\\u0000" in text:  # a NUL in, say, a bounce's diagnostic: jsonb holds none
        message = without_nul(message)
    if inbound.is_received(message):
        if received is not None:
            received.append(message)
        return []
    return read(message, row.received_at or datetime.now(UTC))


async def process_batch(
    session: AsyncSession,
    rows: list[Any],
    unmatched_wait: float = UNMATCHED_WAIT_S,
    settings: Settings | None = None,
) -> BatchReport:
    """Apply the events of claimed notifications and mark them processed.

    One statement per event type for the whole batch (see ``repository``); a notification
    that is not a readable SES event is marked processed with its error, never retried.
    One that names an SES message id no message carries yet is put off (``RETRY_S``) while
    it is younger than ``unmatched_wait``: SES can report on mail faster than the send's
    outcome reaches the database. After that it is applied, the unknown ids counted.
    """
    parsed: list[tuple[Any, list[EventRow] | None, str | None]] = []
    received: list[dict[str, Any]] = []  # mail SES received: inbound unsubscribes
    for row in rows:
        try:
            parsed.append((row, events_of(row, received), None))
        except NotAnEvent as exc:
            parsed.append((row, None, str(exc)[:500]))
    for message in received:
        await inbound.apply(session, verifying_keys(settings or get_settings()), message)
    known = await repo.known_ses_ids(
        session, list({e.ses_message_id for _, events, _ in parsed for e in events or []})
    )
    now = datetime.now(UTC)
    deferred = [
        row.id
        for row, events, _ in parsed
        if events
        and any(e.ses_message_id not in known for e in events)
        and row.received_at is not None
        and (now - row.received_at).total_seconds() < unmatched_wait
    ]
    await repo.defer(session, deferred, RETRY_S)
    skip = set(deferred)
    report = BatchReport(notifications=len(rows) - len(skip), deferred=len(skip))
    by_type: dict[str, list[tuple[int, EventRow]]] = defaultdict(list)
    done: list[int] = []
    errors: list[str | None] = []
    for row, events, error in parsed:
        if row.id in skip:
            continue
        done.append(row.id)
        errors.append(error)
        if error is not None:
            report.errors += 1
        for event in events or []:
            by_type[event.type].append((row.id, event))
    for kind in APPLY_ORDER:
        items = by_type.get(kind)
        if not items:
            continue
        applied = await repo.apply_events(session, kind, items)
        report.events += len(items)
        report.stored += applied.stored
        report.unmatched += applied.unmatched
        report.by_type[kind] = applied.stored
        metrics.EVENTS.labels(kind).inc(applied.stored)
    # auto-pause: checked right after the effects, in the same transaction (SPEC 8)
    risky = [e.ses_message_id for k in ("bounce", "complaint") for _, e in by_type.get(k, [])]
    if risky:
        await reputation.after_events(session, settings or get_settings(), risky)
    await repo.mark_processed(session, done, errors)
    if report.unmatched:
        # kept and counted: mail of another system, or from before a database restore
        log.info("events_unmatched", count=report.unmatched)
    return report
