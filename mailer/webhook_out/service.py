"""Outgoing webhook endpoints: register, change, rotate the secret, read the delivery log,
retry, replay, test. Services never commit (the request owns the transaction)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from mailer.config import Settings
from mailer.errors import Conflict, Invalid, NotFound
from mailer.models.webhook_out import WebhookDelivery, WebhookEndpoint
from mailer.pagination import Page
from mailer.webhook_out import repository as repo
from mailer.webhook_out.outbox import emit_to
from mailer.webhook_out.safety import Refused, check_url
from mailer.webhook_out.schemas import (
    DeliveryOut,
    DeliveryPage,
    EndpointCreated,
    EndpointIn,
    EndpointOut,
    EndpointPage,
    EndpointPatch,
    ReplayOut,
    RotateIn,
    RotateOut,
)
from mailer.webhook_out.signing import new_secret

REPLAY_LIMIT = 100_000  # deliveries one replay writes at most


def _check_url(url: str, settings: Settings) -> str:
    url = url.strip()
    try:
        check_url(url, settings.webhooks_allow_private)
    except (Refused, ValueError) as exc:
        raise Invalid.at(["body", "url"], f"not a URL webhooks may call: {exc}") from exc
    return url


def _out(endpoint: WebhookEndpoint) -> EndpointOut:
    return EndpointOut.model_validate(endpoint, from_attributes=True)


async def create(session: AsyncSession, settings: Settings, body: EndpointIn) -> EndpointCreated:
    values = body.model_dump()
    values["url"] = _check_url(body.url, settings)
    endpoint = await repo.add_endpoint(session, **values, secret=new_secret())
    return EndpointCreated(**_out(endpoint).model_dump(), secret=endpoint.secret)


async def _endpoint(
    session: AsyncSession, endpoint_id: int, *, lock: bool = False
) -> WebhookEndpoint:
    endpoint = await repo.get_endpoint(session, endpoint_id, lock=lock)
    if endpoint is None:
        raise NotFound(f"webhook endpoint {endpoint_id} not found")
    return endpoint


async def get(session: AsyncSession, endpoint_id: int) -> EndpointOut:
    return _out(await _endpoint(session, endpoint_id))


async def page(session: AsyncSession, page: Page[int]) -> EndpointPage:
    rows, next_cursor = page.cut(
        await repo.endpoints_after(session, page.last, page.fetch), key=lambda e: e.id
    )
    return EndpointPage(items=[_out(e) for e in rows], next_cursor=next_cursor)


async def patch(
    session: AsyncSession, settings: Settings, endpoint_id: int, body: EndpointPatch
) -> EndpointOut:
    endpoint = await _endpoint(session, endpoint_id, lock=True)
    values: dict[str, Any] = {k: getattr(body, k) for k in body.model_fields_set}
    for required in ("url", "enabled", "description"):
        if required in values and values[required] is None:
            raise Invalid.at(["body", required], f"{required} cannot be null")
    if "url" in values:
        values["url"] = _check_url(values["url"], settings)
    if values.get("enabled") and not endpoint.enabled:
        # enabled again by hand: a fresh start (what was pending is delivered now)
        values.update(
            disabled_reason=None, consecutive_failures=0, failing_since=None, hold_until=None
        )
    if values.get("enabled") is False:
        values["disabled_reason"] = None
    if values:
        await repo.update_endpoint(session, endpoint_id, **values)
    await session.refresh(endpoint)
    return _out(endpoint)


async def delete(session: AsyncSession, endpoint_id: int) -> None:
    """The endpoint and its delivery log."""
    if not await repo.delete_endpoint(session, endpoint_id):
        raise NotFound(f"webhook endpoint {endpoint_id} not found")


async def rotate(session: AsyncSession, endpoint_id: int, body: RotateIn) -> RotateOut:
    """A new secret, shown once; the current one keeps signing next to it for the overlap
    (receivers accept either signature), then stops."""
    endpoint = await _endpoint(session, endpoint_id, lock=True)
    secret = new_secret()
    until = datetime.now(UTC) + timedelta(seconds=body.overlap_seconds)
    overlap = body.overlap_seconds > 0
    await repo.update_endpoint(
        session,
        endpoint_id,
        secret=secret,
        previous_secret=endpoint.secret if overlap else None,
        previous_secret_until=until if overlap else None,
    )
    return RotateOut(secret=secret, previous_secret_until=until if overlap else None)


def _delivery(d: WebhookDelivery) -> DeliveryOut:
    out = DeliveryOut.model_validate(d, from_attributes=True)
    if d.status != "pending":
        out.next_attempt_at = None
    return out


async def deliveries(
    session: AsyncSession, endpoint_id: int, page: Page[int], status: str | None
) -> DeliveryPage:
    await _endpoint(session, endpoint_id)
    rows, next_cursor = page.cut(
        await repo.deliveries_before(session, endpoint_id, page.last, page.fetch, status),
        key=lambda d: d.id,
    )
    return DeliveryPage(items=[_delivery(d) for d in rows], next_cursor=next_cursor)


async def retry(session: AsyncSession, endpoint_id: int, delivery_id: int) -> DeliveryOut:
    """A delivered or dead delivery is sent again (same ``webhook-id``), with a fresh set
    of attempts; a pending one is a 409 (it is being retried already)."""
    if await repo.get_delivery(session, endpoint_id, delivery_id) is None:
        raise NotFound(f"delivery {delivery_id} of webhook endpoint {endpoint_id} not found")
    if not await repo.retry_delivery(session, endpoint_id, delivery_id):
        raise Conflict("the delivery is pending already")
    await repo.lift_hold(session, endpoint_id)
    delivery = await repo.get_delivery(session, endpoint_id, delivery_id)
    assert delivery is not None  # noqa: S101 - read in this transaction
    await session.refresh(delivery)
    return _delivery(delivery)


async def replay(session: AsyncSession, endpoint_id: int, since: datetime) -> ReplayOut:
    """The endpoint's events since ``since`` are sent again, in order, with their
    original ``webhook-id`` (a receiver that has them deduplicates)."""
    await _endpoint(session, endpoint_id)
    if since.tzinfo is None:
        raise Invalid.at(["query", "since"], "since needs a time zone (e.g. Z)")
    replayed = await repo.replay(session, endpoint_id, since, REPLAY_LIMIT)
    await repo.lift_hold(session, endpoint_id)
    return ReplayOut(replayed=replayed)


async def test(session: AsyncSession, endpoint_id: int) -> DeliveryOut:
    """A ``webhook.test`` event for this endpoint alone, whatever it subscribes to."""
    endpoint = await _endpoint(session, endpoint_id)
    delivery_id = await emit_to(
        session,
        endpoint_id,
        "webhook.test",
        {"endpoint_id": endpoint_id, "url": endpoint.url, "message": "a test event"},
    )
    delivery = await repo.get_delivery(session, endpoint_id, delivery_id)
    assert delivery is not None  # noqa: S101 - written in this transaction
    return _delivery(delivery)


DASHBOARD_ENDPOINTS = 50


async def dashboard_rows(session: AsyncSession) -> list[dict[str, Any]]:
    """The dashboard's line per endpoint: state, backlog and its age, the last day's
    failure rate."""
    endpoints = await repo.endpoints_after(session, None, DASHBOARD_ENDPOINTS)
    stats = await repo.endpoint_stats(session, [e.id for e in endpoints])
    now = datetime.now(UTC)
    rows = []
    for e in endpoints:
        s = stats.get(e.id)
        delivered = int(s.delivered) if s else 0
        failing = int(s.failing) if s else 0
        oldest = s.oldest_pending if s else None
        rows.append(
            {
                "id": e.id,
                "url": e.url,
                "enabled": e.enabled,
                "disabled_reason": e.disabled_reason,
                "consecutive_failures": e.consecutive_failures,
                "backlog": int(s.backlog) if s else 0,
                "oldest_pending_seconds": (now - oldest).total_seconds() if oldest else None,
                "delivered": delivered,
                "failing": failing,
                "failure_rate": failing / (delivered + failing) if delivered + failing else 0.0,
                "dead": int(s.dead) if s else 0,
            }
        )
    return rows
