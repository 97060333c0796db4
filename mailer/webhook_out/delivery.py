"""The deliverer: drains the outbox to the endpoints, signed, in order per message.

One loop per worker process claims due deliveries (``delivery_repository.claim``) as long as it has
room for more requests in flight, each request is a task of its own, and their outcomes
are recorded in batches. A request in flight is bounded by the timeout; an endpoint has at
most ``webhooks_endpoint_concurrency`` of them, and one that stops answering is held
(no new attempts for a while): a slow or dead endpoint never holds up the others.

Killed at any instant, it loses nothing: a claimed delivery whose outcome was not recorded
is claimed again once its lease lapses, with the same ``webhook-id``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid

import aiohttp
import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mailer.config import Settings
from mailer.db import transaction
from mailer.webhook_out import delivery_repository as repo
from mailer.webhook_out.metrics import count_outcomes
from mailer.webhook_out.safety import GuardedResolver, Refused, Resolver, SystemResolver, check_url
from mailer.webhook_out.signing import headers

log = structlog.get_logger(__name__)

FLUSH_SECONDS = 0.02  # outcomes wait at most this long to be recorded with others
FLUSH_SIZE = 500
SWEEP_SECONDS = 600.0  # the log's retention is applied this often, a batch at a time
SWEEP_BATCH = 10_000


def retry_delay(schedule: list[float], attempts: int) -> float | None:
    """Seconds before the next attempt after ``attempts`` failed ones (jittered ±20 %), or
    None: no attempt left, the delivery is dead."""
    if attempts > len(schedule):
        return None
    return schedule[attempts - 1] * random.uniform(0.8, 1.2)  # noqa: S311 - jitter


class Deliverer:
    def __init__(
        self,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession],
        resolver: Resolver | None = None,
    ) -> None:
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.resolver = resolver or SystemResolver()
        self.token = str(uuid.uuid4())  # this deliverer's leases
        self._http: aiohttp.ClientSession | None = None
        self._in_flight: dict[int, int] = {}  # endpoint id → requests
        self._tasks: set[asyncio.Task[None]] = set()
        self._outcomes: list[repo.Outcome] = []
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._stopping = False
        self._claiming = False
        self._loop_task: asyncio.Task[None] | None = None
        self._flush_task: asyncio.Task[None] | None = None
        self._flush_now = asyncio.Event()

    # -- lifecycle --------------------------------------------------------------------

    def http(self) -> aiohttp.ClientSession:
        if self._http is None:
            s = self.settings
            connector = aiohttp.TCPConnector(
                resolver=GuardedResolver(self.resolver, s.webhooks_allow_private),
                limit=s.webhooks_concurrency,
                ttl_dns_cache=10,
            )
            self._http = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=s.webhooks_timeout_seconds),
                trust_env=False,  # no proxy from the environment
                auto_decompress=False,
                skip_auto_headers=("Accept-Encoding",),
            )
        return self._http

    def start(self) -> None:
        self._loop_task = asyncio.create_task(self.run())
        self._flush_task = asyncio.create_task(self._flush_forever())

    def wake(self) -> None:
        """Look for due deliveries now (one was just written or retried)."""
        self._wake.set()

    async def stop(self, grace: float | None = None) -> None:
        """Claim nothing more; let the requests in flight end (at most their timeout) and
        record their outcomes. Whatever is left is claimed again after its lease."""
        self._stopping = True
        self._wake.set()
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        grace = self.settings.webhooks_timeout_seconds + 1.0 if grace is None else grace
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=grace)
        if self._flush_task is not None:
            self._flush_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flush_task
        with contextlib.suppress(Exception):
            await self._flush()
        if self._http is not None:
            await self._http.close()
            self._http = None

    # -- the loop ---------------------------------------------------------------------

    async def run(self) -> None:
        """Claim and send until stopped; a database outage is waited out."""
        next_sweep = time.monotonic() + SWEEP_SECONDS
        while not self._stopping:
            if time.monotonic() >= next_sweep:
                next_sweep = time.monotonic() + SWEEP_SECONDS
                await self._sweep()
            try:
                claimed = await self.claim_and_send()
            except Exception as exc:  # noqa: BLE001 - the database may be back next time
                log.warning("webhooks_claim_failed", error=repr(exc))
                await asyncio.sleep(1.0)
                continue
            if claimed >= self._last_limit:
                continue  # a full claim: there may be more
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.webhooks_poll_seconds)

    async def _sweep(self) -> None:
        """The log's retention: old delivered and dead deliveries, a batch at a time."""
        try:
            async with transaction(self.sessionmaker) as session:
                await repo.sweep(session, self.settings.webhooks_retention_days, SWEEP_BATCH)
        except Exception as exc:  # noqa: BLE001 - next time
            log.warning("webhooks_sweep_failed", error=repr(exc))

    async def claim_and_send(self) -> int:
        """Claim as many due deliveries as there is room for and start their requests.
        Claims go in batches: with less than a quarter of the room free, it waits."""
        s = self.settings
        low = max(1, s.webhooks_concurrency // 4)
        if s.webhooks_concurrency - len(self._tasks) < low:
            self._room_needed = low
            self._room.clear()
            await self._room.wait()
        room = s.webhooks_concurrency - len(self._tasks)
        self._last_limit = min(room, s.webhooks_batch_size)
        self._claiming = True
        try:
            async with transaction(self.sessionmaker) as session:
                claimed = await repo.claim(
                    session,
                    self.token,
                    s.webhooks_lease_seconds,
                    self._last_limit,
                    s.webhooks_endpoint_concurrency,
                    self._in_flight,
                )
        finally:
            self._claiming = False
        for delivery in claimed:
            self._in_flight[delivery.endpoint_id] = self._in_flight.get(delivery.endpoint_id, 0) + 1
            task = asyncio.create_task(self._deliver(delivery))
            self._tasks.add(task)
            task.add_done_callback(self._done)
        return len(claimed)

    _room_needed = 1
    _last_limit = 1

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if self.settings.webhooks_concurrency - len(self._tasks) >= self._room_needed:
            self._room.set()

    async def _deliver(self, delivery: repo.Claimed) -> None:
        try:
            outcome = await self.attempt(delivery)
        finally:
            n = self._in_flight[delivery.endpoint_id]
            if n - 1 == self.settings.webhooks_endpoint_concurrency // 2:
                # half the endpoint's cap is free again: worth a claim (not one per slot)
                self._wake.set()
            if n > 1:
                self._in_flight[delivery.endpoint_id] = n - 1
            else:
                del self._in_flight[delivery.endpoint_id]
        self._outcomes.append(outcome)
        if len(self._outcomes) >= FLUSH_SIZE:
            self._wake_flush()

    # -- one attempt ------------------------------------------------------------------

    async def attempt(self, delivery: repo.Claimed) -> repo.Outcome:
        """One signed POST; its outcome (never raises for the endpoint's faults)."""
        s = self.settings
        body = delivery.body.encode()
        code: int | None = None
        answer: str | None = None
        error: str | None = None
        hold = False
        try:
            check_url(delivery.url, s.webhooks_allow_private)
            signed = headers(delivery.webhook_id, int(time.time()), body, delivery.secrets)
            async with self.http().post(
                delivery.url, data=body, headers=signed, allow_redirects=False
            ) as response:
                code = response.status
                raw = await response.content.read(s.webhooks_max_response_bytes)
                answer = raw.decode("utf-8", "replace")
        except Refused as exc:
            error = f"refused: {exc}"
        except aiohttp.ClientConnectorError as exc:
            cause = exc.os_error if isinstance(exc.os_error, Refused) else None
            error = f"refused: {cause}" if cause else f"connection failed: {exc}"
            hold = cause is None
        except TimeoutError:
            error = f"no answer within {s.webhooks_timeout_seconds:g} s"
            hold = True
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            error = f"request failed: {exc!r}"[:500]
            hold = True
        ok = code is not None and 200 <= code < 300
        if code is not None and not ok:
            error = f"answered {code}" + (
                " (redirects are not followed)" if 300 <= code < 400 else ""
            )
            hold = code == 429 or code >= 500
        delay = None if ok else retry_delay(s.webhooks_retry_schedule, delivery.attempts)
        return repo.Outcome(delivery.id, delivery.endpoint_id, ok, code, error, answer, delay, hold)

    # -- recording ----------------------------------------------------------------------

    def _wake_flush(self) -> None:
        self._flush_now.set()

    async def _flush_forever(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._flush_now.wait(), FLUSH_SECONDS)
            self._flush_now.clear()
            try:
                await self._flush()
            except Exception as exc:  # noqa: BLE001 - kept, tried again at the next flush
                log.warning("webhooks_record_failed", error=repr(exc))
                await asyncio.sleep(0.5)

    async def _flush(self) -> None:
        if not self._outcomes:
            return
        outcomes, self._outcomes = self._outcomes, []
        s = self.settings
        try:
            async with transaction(self.sessionmaker) as session:
                rows = await repo.record(session, self.token, outcomes)
                endpoints = await repo.endpoint_outcomes(
                    session,
                    outcomes,
                    hold_base=s.webhooks_retry_schedule[0] if s.webhooks_retry_schedule else 1.0,
                    hold_max=s.webhooks_hold_max_seconds,
                    disable_failures=s.webhooks_disable_after_failures,
                    disable_seconds=s.webhooks_disable_after_seconds,
                )
        except BaseException:
            self._outcomes[:0] = outcomes  # recorded with the next flush
            raise
        count_outcomes(rows)
        for e in endpoints:
            if not e.enabled and e.disabled_reason:
                log.warning("webhook_endpoint_disabled", endpoint=e.id, reason=e.disabled_reason)
        if any(o.ok for o in outcomes):
            self._wake.set()  # a delivered event may let the next of its message go

    async def drain(self, timeout: float = 30.0) -> None:  # noqa: ASYNC109 - tests, bench
        """Deliver until nothing is due and nothing is in flight (tests and the bench)."""
        started_here = self._loop_task is None
        if started_here:
            self.start()
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                await asyncio.sleep(0.02)
                if self._tasks or self._outcomes or self._claiming:
                    continue
                async with transaction(self.sessionmaker) as session:
                    due = await repo.any_due(session)
                if not due and not (self._tasks or self._outcomes or self._claiming):
                    return
            raise TimeoutError("webhook deliveries still due")
        finally:
            if started_here:
                await self._halt()

    async def _halt(self) -> None:
        """Stop the loop and the flusher (the deliverer can be started again)."""
        for name in ("_loop_task", "_flush_task"):
            task = getattr(self, name)
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                setattr(self, name, None)
        if self._tasks:
            await asyncio.wait(set(self._tasks))
        await self._flush()

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None
