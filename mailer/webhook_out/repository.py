"""The SQL of outgoing webhooks: endpoints, and the deliverer's claim and record.

A delivery is claimed under a lease (a lapsed lease, a deliverer killed mid-request, is
claimed again: the same ``webhook-id``, so the receiver deduplicates); its outcome is
recorded only under the lease that sent it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from mailer.models.webhook_out import WebhookDelivery, WebhookEndpoint

Db = AsyncSession | AsyncConnection

# -- endpoints ------------------------------------------------------------------------


async def add_endpoint(session: AsyncSession, **values: Any) -> WebhookEndpoint:
    endpoint = WebhookEndpoint(**values)
    session.add(endpoint)
    await session.flush()
    await session.refresh(endpoint)
    return endpoint


async def get_endpoint(
    session: AsyncSession, endpoint_id: int, *, lock: bool = False
) -> WebhookEndpoint | None:
    query = select(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id)
    if lock:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def endpoints_after(session: AsyncSession, last: int | None, n: int) -> list[WebhookEndpoint]:
    query = select(WebhookEndpoint).order_by(WebhookEndpoint.id).limit(n)
    if last is not None:
        query = query.where(WebhookEndpoint.id > last)
    return list((await session.execute(query)).scalars())


async def update_endpoint(session: AsyncSession, endpoint_id: int, **values: Any) -> None:
    await session.execute(
        update(WebhookEndpoint)
        .where(WebhookEndpoint.id == endpoint_id)
        .values(**values, updated_at=text("now()"))
    )


async def delete_endpoint(session: AsyncSession, endpoint_id: int) -> bool:
    result = await session.execute(
        delete(WebhookEndpoint)
        .where(WebhookEndpoint.id == endpoint_id)
        .returning(WebhookEndpoint.id)
    )
    return result.scalar_one_or_none() is not None


_ENDPOINT_STATS = text(
    """
    SELECT e.id,
           count(*) FILTER (WHERE d.status = 'pending') AS backlog,
           min(d.created_at) FILTER (WHERE d.status = 'pending') AS oldest_pending,
           count(*) FILTER (WHERE d.status = 'delivered'
                              AND d.last_attempt_at > now() - interval '24 hours') AS delivered,
           count(*) FILTER (WHERE d.last_status_code IS DISTINCT FROM NULL
                              AND d.status <> 'delivered'
                              AND d.last_attempt_at > now() - interval '24 hours') AS failing,
           count(*) FILTER (WHERE d.status = 'dead') AS dead
      FROM webhook_endpoints e
      LEFT JOIN webhook_deliveries d ON d.endpoint_id = e.id
     WHERE e.id = ANY(CAST(:ids AS bigint[]))
     GROUP BY e.id
    """
)


async def endpoint_stats(db: Db, ids: list[int]) -> dict[int, Any]:
    """Per endpoint: backlog, its oldest pending event, and the last day's outcomes."""
    if not ids:
        return {}
    return {r.id: r for r in await db.execute(_ENDPOINT_STATS, {"ids": ids})}


# -- deliveries (operator view) ---------------------------------------------------------


async def deliveries_before(
    session: AsyncSession, endpoint_id: int, last: int | None, n: int, status: str | None
) -> list[WebhookDelivery]:
    """Newest first."""
    query = (
        select(WebhookDelivery)
        .where(WebhookDelivery.endpoint_id == endpoint_id)
        .order_by(WebhookDelivery.id.desc())
        .limit(n)
    )
    if last is not None:
        query = query.where(WebhookDelivery.id < last)
    if status is not None:
        query = query.where(WebhookDelivery.status == status)
    return list((await session.execute(query)).scalars())


async def get_delivery(
    session: AsyncSession, endpoint_id: int, delivery_id: int
) -> WebhookDelivery | None:
    query = select(WebhookDelivery).where(
        WebhookDelivery.id == delivery_id, WebhookDelivery.endpoint_id == endpoint_id
    )
    return (await session.execute(query)).scalar_one_or_none()


_RETRY = text(
    """
    UPDATE webhook_deliveries
       SET status = 'pending', next_attempt_at = now(), attempts = 0, lease_token = NULL,
           lease_until = NULL
     WHERE id = :id AND endpoint_id = :endpoint_id AND status <> 'pending'
    RETURNING id
    """
)


_LIFT_HOLD = text("UPDATE webhook_endpoints SET hold_until = NULL WHERE id = :id")


async def lift_hold(session: AsyncSession, endpoint_id: int) -> None:
    """An operator's retry or replay is tried now, even on an endpoint held after failures."""
    await session.execute(_LIFT_HOLD, {"id": endpoint_id})


async def retry_delivery(session: AsyncSession, endpoint_id: int, delivery_id: int) -> bool:
    """A delivered or dead delivery goes back to pending, now, with a fresh set of
    attempts (the same ``webhook-id``); False when it is pending already."""
    rows = await session.execute(_RETRY, {"id": delivery_id, "endpoint_id": endpoint_id})
    return rows.scalar_one_or_none() is not None


# The events an endpoint was sent (or was to be sent) since a time, written again as new
# pending deliveries with their original webhook-id and payload: a receiver that kept them
# deduplicates, one that lost them gets them back, each message's events in order.
_REPLAY = text(
    """
    INSERT INTO webhook_deliveries (endpoint_id, webhook_id, type, payload, message_id)
    SELECT endpoint_id, webhook_id, type, payload, message_id
      FROM webhook_deliveries
     WHERE endpoint_id = :endpoint_id AND created_at >= :since AND status <> 'pending'
       AND type <> 'webhook.test'
     ORDER BY id
     LIMIT :limit
    RETURNING id
    """
)


async def replay(session: AsyncSession, endpoint_id: int, since: datetime, limit: int) -> int:
    rows = await session.execute(
        _REPLAY, {"endpoint_id": endpoint_id, "since": since, "limit": limit}
    )
    return len(rows.all())
