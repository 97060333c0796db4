"""Reputation: event counts, the auto-pause checks, the operator report.

Event processing calls :func:`on_events` in the transaction that applies a notification's
effects: the rollups are bumped and, when bounces or complaints came in, the checks run
right there, so a campaign or mail class is paused within the processing cycle of the
event that crossed the line. Transactional mail outside campaigns is never paused; a
mail class is paused only by its own numbers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from datetime import datetime
from typing import Protocol

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from mailer import metrics
from mailer.config import Settings
from mailer.engagement.providers import class_providers
from mailer.reputation import account_rows, repository
from mailer.reputation.schemas import (
    CampaignReputation,
    ClassRegionReputation,
    RegionQuota,
    ReputationOut,
    Status,
    Window,
)

log = structlog.get_logger(__name__)

Db = AsyncSession | AsyncConnection


class Pause(Protocol):
    """``mailer.campaign.repository.pause``: reputation decides, the campaign repository
    pauses (so the campaign package stays free to import reputation)."""

    def __call__(
        self,
        db: Db,
        reason: str,
        *,
        campaign_id: int | None = None,
        mail_class: str | None = None,
    ) -> Awaitable[list[int]]: ...


# kinds that can push a rate over its threshold
_RISKY = {"hard_bounce", "complaint"}


async def on_events(
    db: Db, settings: Settings, items: Sequence[tuple[int, str, datetime | None]], pause: Pause
) -> list[str]:
    """Count ``(message_id, kind, occurred_at)`` events (kinds: delivered, hard_bounce,
    soft_bounce, complaint; others are only counted in metrics), then run the checks.
    The reasons of the pauses made, if any."""
    if not items:
        return []
    for _, kind, _ in items:
        metrics.EVENTS.labels(kind).inc()
    touched = await repository.add_events(db, items)
    if not any(kind in _RISKY for _, kind, _ in items):
        return []
    return await check(db, settings, touched, pause)


async def after_events(
    db: Db, settings: Settings, ses_message_ids: list[str], pause: Pause
) -> list[str]:
    """The feedback loop applied bounces or complaints of these messages (their rollups
    are bumped by its statements): run the checks now. The reasons of the pauses made."""
    return await check(db, settings, await repository.touched_by(db, ses_message_ids), pause)


def _reason(what: str, sent: int, hard_bounces: int, complaints: int, settings: Settings) -> str:
    bounce, complaint = hard_bounces / sent, complaints / sent
    if bounce > settings.bounce_rate_threshold:
        rate = f"bounce rate {bounce:.2%} over the {settings.bounce_rate_threshold:.2%} threshold"
    else:
        rate = (
            f"complaint rate {complaint:.3%} over the "
            f"{settings.complaint_rate_threshold:.3%} threshold"
        )
    return (
        f"auto-pause: {what} {rate} ({hard_bounces} hard bounces, {complaints} "
        f"complaints in {sent} sends)"
    )


async def check(
    db: Db, settings: Settings, touched: set[tuple[str, int | None]], pause: Pause
) -> list[str]:
    """Pause every touched campaign over a threshold (since its last resume), and the
    campaigns of every touched mail class over one in 24 hours."""
    reasons: list[str] = []
    campaign_ids = sorted({cid for _, cid in touched if cid})
    if campaign_ids:
        over = await repository.campaigns_over(
            db,
            campaign_ids,
            settings.auto_pause_min_sends,
            settings.bounce_rate_threshold,
            settings.complaint_rate_threshold,
        )
        for row in over:
            reason = _reason(
                "campaign", int(row.sent), int(row.hard_bounces), int(row.complaints), settings
            )
            if await pause(db, reason, campaign_id=row.id):
                await repository.log_pause(db, "campaign", row.mail_class, row.id, 1, reason)
                metrics.AUTO_PAUSES.labels("campaign", row.mail_class).inc()
                log.warning(
                    "campaign_auto_paused",
                    campaign_id=row.id,
                    mail_class=row.mail_class,
                    reason=reason,
                )
                reasons.append(reason)
    for mail_class in sorted({mc for mc, _ in touched}):
        totals = await repository.class_totals(db, mail_class)
        if totals.sent < settings.auto_pause_min_sends or not _over(totals, settings):
            continue
        reason = _reason(
            f"mail class {mail_class} over 24 h:",
            totals.sent,
            totals.hard_bounces,
            totals.complaints,
            settings,
        )
        paused = await pause(db, reason, mail_class=mail_class)
        if paused:
            await repository.log_pause(db, "mail_class", mail_class, None, len(paused), reason)
            metrics.AUTO_PAUSES.labels("mail_class", mail_class).inc()
            log.warning(
                "mail_class_auto_paused", mail_class=mail_class, campaigns=paused, reason=reason
            )
            reasons.append(reason)
    return reasons


def _over(t: repository.Totals, settings: Settings) -> bool:
    return (
        t.hard_bounces > settings.bounce_rate_threshold * t.sent
        or t.complaints > settings.complaint_rate_threshold * t.sent
    )


async def rearm(db: Db, campaign_id: int) -> None:
    """An explicit resume: the checks start counting again from now."""
    await repository.rearm(db, campaign_id)


def _windows(row: object) -> dict[str, Window]:
    return {f"last_{name}": _window(row, name) for name in repository.WINDOWS}


def _window(row: object, name: str) -> Window:
    sent = int(getattr(row, f"sent_{name}"))
    hard = int(getattr(row, f"hard_bounces_{name}"))
    soft = int(getattr(row, f"soft_bounces_{name}"))
    complaints = int(getattr(row, f"complaints_{name}"))
    return Window(
        sent=sent,
        delivered=int(getattr(row, f"delivered_{name}")),
        bounced=hard + soft,
        hard_bounces=hard,
        soft_bounces=soft,
        complained=complaints,
        bounce_rate=hard / sent if sent else 0.0,
        complaint_rate=complaints / sent if sent else 0.0,
    )


def status_of(windows: dict[str, Window], settings: Settings, paused: bool) -> Status:
    """paused; warning when a rate over 1 h or 24 h is past half its threshold; ok."""
    if paused:
        return "paused"
    for name in ("last_1h", "last_24h"):
        w = windows[name]
        if w.sent and (
            w.bounce_rate > settings.bounce_rate_threshold / 2
            or w.complaint_rate > settings.complaint_rate_threshold / 2
        ):
            return "warning"
    return "ok"


def region_rate(settings: Settings, region: str, account: object | None) -> float:
    """The rate the limiter uses: configured override, else GetAccount, else the default."""
    override = settings.region_rates.get(region)
    if override is not None:
        return float(override)
    rate = getattr(account, "max_send_rate", None) if account is not None else None
    return float(rate) if rate else float(settings.default_rate)


async def report(db: Db, settings: Settings) -> ReputationOut:
    """GET /v1/reputation: per class and region, per sending campaign, per region."""
    paused_classes = await repository.paused_classes(db)
    classes = []
    for row in await repository.by_class_region(db):
        windows = _windows(row)
        classes.append(
            ClassRegionReputation(
                mail_class=row.mail_class,
                region=row.region or None,
                status=status_of(windows, settings, row.mail_class in paused_classes),
                last_1h=windows["last_1h"],
                last_24h=windows["last_24h"],
                last_7d=windows["last_7d"],
            )
        )
    campaigns = []
    for row in await repository.by_campaign(db):
        windows = _windows(row)
        campaigns.append(
            CampaignReputation(
                id=row.id,
                name=row.name,
                mail_class=row.mail_class,
                campaign_status=row.status,
                paused_reason=row.paused_reason,
                sent=int(row.sent_all),
                hard_bounces=int(row.hb_all),
                complained=int(row.co_all),
                status=status_of(windows, settings, row.status == "paused"),
                last_1h=windows["last_1h"],
                last_24h=windows["last_24h"],
                last_7d=windows["last_7d"],
            )
        )
    accounts = await account_rows.accounts(db)
    recorded = await account_rows.sent_24h_by_region(db)
    regions = []
    for region in settings.regions:
        account = accounts.get(region)
        regions.append(
            RegionQuota(
                region=region,
                send_rate_limit=region_rate(settings, region, account),
                rate_overridden=region in settings.region_rates,
                max_send_rate=getattr(account, "max_send_rate", None),
                max_24h_send=getattr(account, "max_24h_send", None),
                sent_last_24h=getattr(account, "sent_last_24h", None),
                sent_24h_recorded=recorded.get(region, 0),
                sending_enabled=getattr(account, "sending_enabled", None),
                enforcement_status=getattr(account, "enforcement_status", None),
                production_access=getattr(account, "production_access", None),
                checked_at=getattr(account, "checked_at", None),
                error=getattr(account, "error", None),
            )
        )
    return ReputationOut(
        thresholds={
            "bounce_rate": settings.bounce_rate_threshold,
            "complaint_rate": settings.complaint_rate_threshold,
            "min_sends": settings.auto_pause_min_sends,
        },
        mail_classes=classes,
        campaigns=campaigns,
        regions=regions,
        providers=await class_providers(db, list(settings.configuration_sets)),
    )
