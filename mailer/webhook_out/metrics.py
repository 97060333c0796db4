"""Prometheus: deliveries by outcome (counted by the deliverer), backlog read at scrape."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client import Counter, Histogram
from prometheus_client.core import Metric
from sqlalchemy.ext.asyncio import AsyncSession

from mailer.metrics import gauge
from mailer.webhook_out import delivery_repository as repo

OUTCOMES = ("delivered", "retry", "dead")

DELIVERIES = Counter(
    "mailer_webhook_deliveries", "Outgoing webhook delivery attempts, by outcome", ["outcome"]
)
LATENCY = Histogram(
    "mailer_webhook_delivery_latency_seconds",
    "From the event written to its delivery",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0, 300.0, 3600.0),
)
for _outcome in OUTCOMES:
    DELIVERIES.labels(_outcome)


def count_outcomes(rows: Iterable[Any]) -> None:
    """``rows``: (status, age in seconds) of each outcome recorded."""
    for status, age in rows:
        if status == "delivered":
            DELIVERIES.labels("delivered").inc()
            LATENCY.observe(float(age))
        elif status == "dead":
            DELIVERIES.labels("dead").inc()
        else:
            DELIVERIES.labels("retry").inc()


async def families(session: AsyncSession) -> list[Metric]:
    """Read at scrape time (``mailer.ops.scrape``): the backlog and its oldest event's age."""
    row = await repo.backlog(session)
    return [
        gauge(
            "mailer_webhook_backlog",
            "Outgoing webhook deliveries pending (not delivered, not dead)",
            [],
            [([], float(row.pending))],
        ),
        gauge(
            "mailer_webhook_backlog_age_seconds",
            "Age of the oldest pending outgoing webhook delivery",
            [],
            [([], float(row.oldest_seconds))],
        ),
        gauge(
            "mailer_webhook_endpoints_disabled",
            "Outgoing webhook endpoints disabled (by hand or after a long run of failures)",
            [],
            [([], float(row.disabled))],
        ),
    ]
