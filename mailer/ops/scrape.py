"""The numbers /metrics reads at scrape time: facts of the whole system, kept in
PostgreSQL and Redis (queue depths, suppressions, reputation, campaign progress, region
quotas), so every API process answers the same whatever process did the work."""

from __future__ import annotations

from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from mailer.campaign.service import progress as campaign_progress
from mailer.config import Settings
from mailer.metrics import gauge
from mailer.models import STAT_NAMES
from mailer.ops import heartbeat
from mailer.queues import QUEUES as ARQ_QUEUES
from mailer.reputation import account_rows
from mailer.reputation import repository as reputation
from mailer.reputation.service import region_rate
from mailer.suppression import repository as suppressions
from mailer.webhook_out import metrics as webhook_out_metrics

ARQ_QUEUE_KEYS = tuple(ARQ_QUEUES.values())
WORKER_QUEUES = tuple(ARQ_QUEUES)  # the names `mailer worker --queues` takes

# campaigns under way, and the last ones finished: bounded, whatever the history
_CAMPAIGNS = text(
    """
    (SELECT c.id, c.status, s.* FROM campaigns c JOIN campaign_stats s ON s.campaign_id = c.id
      WHERE c.status IN ('sending', 'paused', 'scheduled'))
    UNION
    (SELECT c.id, c.status, s.* FROM campaigns c JOIN campaign_stats s ON s.campaign_id = c.id
      WHERE c.status IN ('completed', 'cancelled', 'failed') ORDER BY c.id DESC LIMIT 20)
    """
)


async def families(session: AsyncSession, redis: Any, settings: Settings) -> list[Metric]:
    out: list[Metric] = []
    depths = []
    for queue in ARQ_QUEUE_KEYS:
        depths.append(([queue], float(await redis.zcard(queue))))
    out.append(gauge("mailer_queue_depth", "Jobs waiting in an arq queue", ["queue"], depths))
    seen = await heartbeat.workers_seen(redis, WORKER_QUEUES)
    out.append(
        gauge(
            "mailer_workers_seen",
            "Worker processes with a recent heartbeat, per queue (0: nothing works on it)",
            ["queue"],
            [([queue], float(n)) for queue, n in seen.items()],
        )
    )

    by_scope = await suppressions.count_by_scope(session)
    out.append(
        gauge(
            "mailer_suppressions",
            "Suppressed addresses",
            ["scope"],
            [([scope], float(n)) for scope, n in by_scope.items()],
        )
    )

    sent = GaugeMetricFamily(
        "mailer_reputation_sent",
        "Sends counted for reputation (simulator traffic left out)",
        labels=["mail_class", "region", "window"],
    )
    rate = GaugeMetricFamily(
        "mailer_reputation_rate",
        "Hard bounce and complaint rates",
        labels=["mail_class", "region", "kind", "window"],
    )
    for row in await reputation.by_class_region(session):
        for window in ("1h", "24h"):
            n = int(getattr(row, f"sent_{window}"))
            hard = int(getattr(row, f"hard_bounces_{window}"))
            complaints = int(getattr(row, f"complaints_{window}"))
            labels = [row.mail_class, row.region]
            sent.add_metric([*labels, window], n)
            rate.add_metric([*labels, "bounce", window], hard / n if n else 0.0)
            rate.add_metric([*labels, "complaint", window], complaints / n if n else 0.0)
    out += [sent, rate]
    out.append(
        gauge(
            "mailer_auto_pause_threshold",
            "Auto-pause thresholds",
            ["kind"],
            [
                (["bounce"], settings.bounce_rate_threshold),
                (["complaint"], settings.complaint_rate_threshold),
                (["min_sends"], float(settings.auto_pause_min_sends)),
            ],
        )
    )

    progress = GaugeMetricFamily(
        "mailer_campaign_messages", "Campaign counters", labels=["campaign_id", "status", "stat"]
    )
    done = GaugeMetricFamily(
        "mailer_campaign_progress",
        "Share of a campaign's recipients that are done",
        labels=["campaign_id", "status"],
    )
    for row in await session.execute(_CAMPAIGNS):
        cid = str(row.id)
        for stat in STAT_NAMES:
            progress.add_metric([cid, row.status, stat], float(getattr(row, stat)))
        done.add_metric([cid, row.status], campaign_progress(row.recipients, row.queued))
    out += [progress, done]

    accounts = await account_rows.accounts(session)
    limit = GaugeMetricFamily(
        "mailer_region_send_rate", "Send rate the limiter uses", labels=["region"]
    )
    quota = GaugeMetricFamily("mailer_region_quota_24h", "SES Max24HourSend", labels=["region"])
    used = GaugeMetricFamily("mailer_region_sent_24h", "SES SentLast24Hours", labels=["region"])
    enabled = GaugeMetricFamily(
        "mailer_region_sending_enabled", "SES SendingEnabled", labels=["region"]
    )
    for region in settings.regions:
        account = accounts.get(region)
        limit.add_metric([region], region_rate(settings, region, account))
        if account is not None and account.max_24h_send is not None:
            quota.add_metric([region], account.max_24h_send)
            used.add_metric([region], account.sent_last_24h or 0.0)
            enabled.add_metric([region], 1.0 if account.sending_enabled else 0.0)
    out += [limit, quota, used, enabled]
    out += await webhook_out_metrics.families(session)
    return out
