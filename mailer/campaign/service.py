"""Campaigns: create, launch, pause, resume, cancel, and their numbers.

State machine: draft → scheduled → sending ⇄ paused → completed | cancelled | failed.
Launch fixes the audience in a job (set-based SQL), then hands out id ranges as jobs.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from arq import ArqRedis
from sqlalchemy.ext.asyncio import AsyncSession

from mailer.audience import service as audience
from mailer.campaign import ab_tests as ab
from mailer.campaign import dispatch, repository, topics
from mailer.campaign import required_content as required
from mailer.campaign.schemas import (
    CampaignIn,
    CampaignOut,
    CampaignPage,
    CampaignPatch,
    MessageOut,
    MessagePage,
    Stats,
    Utm,
)
from mailer.config import Settings
from mailer.contact.addresses import valid_mailbox
from mailer.db import after_commit
from mailer.deliverability.headers import is_bulk
from mailer.engagement.service import engagement_rates
from mailer.errors import Conflict, Invalid, NotFound
from mailer.models import STAT_NAMES, Campaign, CampaignStats
from mailer.pagination import Page
from mailer.reputation import service as reputation
from mailer.ses.senders import SenderCheck, check_sender
from mailer.template import service as templates

TRANSITIONS = {
    "send": {"draft"},
    "pause": set(repository.PAUSABLE),
    "resume": {"paused"},
    "cancel": {"draft", "scheduled", "sending", "paused"},
}


def progress(recipients: int, queued: int) -> float:
    """The share of a campaign's recipients that are finished, 0 to 1: the one rule the
    API, the dashboard, ``mailer status`` and ``/metrics`` show."""
    if recipients <= 0:
        return 0.0
    return min(max(recipients - queued, 0) / recipients, 1.0)


def _out(campaign: Campaign, stats: CampaignStats, version: int) -> CampaignOut:
    return CampaignOut(
        id=campaign.id,
        name=campaign.name,
        status=campaign.status,
        paused_reason=campaign.paused_reason,
        template_id=campaign.template_id,
        template_version=version,
        segment_id=campaign.segment_id,
        topic_id=campaign.topic_id,
        from_address=campaign.from_address,
        reply_to=campaign.reply_to,
        mail_class=campaign.mail_class,
        regions=campaign.regions,
        send_at=campaign.send_at,
        created_at=campaign.created_at,
        started_at=campaign.started_at,
        finished_at=campaign.finished_at,
        utm=Utm(**campaign.utm) if campaign.utm else None,
        stats=Stats(
            **{name: getattr(stats, name) for name in STAT_NAMES},
            progress=progress(stats.recipients, stats.queued),
            **engagement_rates(stats),
        ),
    )


def _mail_class(settings: Settings, mail_class: str) -> str:
    if mail_class not in settings.configuration_sets:
        raise Invalid.at(
            ["body", "mail_class"],
            f"unknown mail class; one of {', '.join(settings.configuration_sets)}",
        )
    return mail_class


def _regions(settings: Settings, regions: list[str]) -> list[str]:
    unknown = [r for r in regions if r not in settings.regions]
    if unknown:
        raise Invalid.at(
            ["body", "regions"],
            f"unknown regions {unknown}; configured: {', '.join(settings.regions)}",
        )
    return list(dict.fromkeys(regions))


def _send_at(send_at: datetime | None) -> datetime | None:
    """A time to send at, in the future (naive times are UTC); None sends at launch."""
    if send_at is None:
        return None
    if send_at.tzinfo is None:
        send_at = send_at.replace(tzinfo=UTC)
    if send_at <= datetime.now(UTC):
        raise Invalid.at(
            ["body", "send_at"],
            f"{send_at.isoformat()} has passed: give a time in the future, or leave send_at"
            " out (or null) to send at launch",
        )
    return send_at


def _utm(utm: Utm | None) -> dict[str, str] | None:
    """The UTM parameters to store: those given; none given is none at all."""
    values = utm.model_dump(exclude_none=True) if utm is not None else {}
    return values or None


async def _version_id(session: AsyncSession, template_id: int, number: int | None) -> int:
    """The id of version ``number`` of the template (its current one when None); a
    template that does not exist is the body's mistake: a 422 naming ``template_id``."""
    try:
        if number is None:
            return (await templates.current_version(session, template_id)).id
        found = await templates.version_number(session, template_id, number)
    except NotFound as exc:
        raise Invalid.at(["body", "template_id"], exc.message) from exc
    if found is None:
        raise Invalid.at(
            ["body", "template_version"], f"template {template_id} has no version {number}"
        )
    return found.id


async def _segment(session: AsyncSession, segment_id: int) -> None:
    """The segment a body names exists; else a 422 naming ``segment_id``."""
    try:
        await audience.get(session, segment_id)
    except NotFound as exc:
        raise Invalid.at(["body", "segment_id"], exc.message) from exc


async def create(
    session: AsyncSession,
    settings: Settings,
    body: CampaignIn,
    senders: SenderCheck | None = None,
) -> CampaignOut:
    """A draft; with ``senders`` (API, console) its From domain's DKIM is checked."""
    from_address = valid_mailbox(body.from_address, ["body", "from_address"])
    reply_to = valid_mailbox(body.reply_to, ["body", "reply_to"]) if body.reply_to else None
    mail_class = _mail_class(settings, body.mail_class)
    regions = _regions(settings, body.regions or [])
    await check_sender(senders, from_address, regions)
    version_id = await _version_id(session, body.template_id, body.template_version)
    await _segment(session, body.segment_id)
    await _required_content(session, settings, mail_class, version_id, body.name, "create")
    campaign = await repository.insert_campaign(
        session,
        name=body.name,
        template_id=body.template_id,
        template_version_id=version_id,
        segment_id=body.segment_id,
        topic_id=await topics.check(session, body.topic_id),
        from_address=from_address,
        reply_to=reply_to,
        mail_class=mail_class,
        regions=regions,
        send_at=_send_at(body.send_at),
        status="draft",
        utm=_utm(body.utm),
    )
    await ab.store(session, settings.templates_dir, campaign, body.variants, body.ab_test)
    return await get(session, campaign.id)


async def update(
    session: AsyncSession,
    settings: Settings,
    campaign_id: int,
    body: CampaignPatch,
    senders: SenderCheck | None = None,
) -> CampaignOut:
    """Change a draft (409 in any other state): the fields the body names."""
    campaign = await _draft(session, campaign_id, "change")
    given = body.model_fields_set
    if body.name is not None:
        campaign.name = body.name
    if body.template_id is not None or body.template_version is not None:
        template_id = body.template_id or campaign.template_id
        campaign.template_version_id = await _version_id(
            session, template_id, body.template_version
        )
        campaign.template_id = template_id
    if body.segment_id is not None:
        await _segment(session, body.segment_id)
        campaign.segment_id = body.segment_id
    if "topic_id" in given:
        campaign.topic_id = await topics.check(session, body.topic_id)
    if body.from_address is not None:
        campaign.from_address = valid_mailbox(body.from_address, ["body", "from_address"])
    if "reply_to" in given:
        campaign.reply_to = (
            valid_mailbox(body.reply_to, ["body", "reply_to"]) if body.reply_to else None
        )
    if body.mail_class is not None:
        campaign.mail_class = _mail_class(settings, body.mail_class)
    if "regions" in given:
        campaign.regions = _regions(settings, body.regions or [])
    if "send_at" in given:
        campaign.send_at = _send_at(body.send_at)
    if "utm" in given:
        campaign.utm = _utm(body.utm)
    if body.from_address is not None or "regions" in given:
        await check_sender(senders, campaign.from_address, campaign.regions)
    await _required_content(
        session, settings, campaign.mail_class, campaign.template_version_id, campaign.name, "save"
    )
    await session.flush()
    return await get(session, campaign_id)


async def delete(session: AsyncSession, campaign_id: int) -> None:
    """Delete a draft (409 in any other state: its messages and numbers are history)."""
    await _draft(session, campaign_id, "delete")
    await repository.delete_campaign(session, campaign_id)


async def _draft(session: AsyncSession, campaign_id: int, action: str) -> Campaign:
    campaign = await repository.get(session, campaign_id, lock=True)
    if campaign is None:
        raise NotFound(f"no campaign {campaign_id}")
    if campaign.status != "draft":
        raise Conflict(
            f"cannot {action} a campaign that is {campaign.status}: only drafts can be"
            " changed or deleted",
            [{"status": campaign.status, "action": action}],
        )
    return campaign


async def page(session: AsyncSession, status: str | None, page: Page[int]) -> CampaignPage:
    """Campaigns by id, a page at a time, optionally those in one status."""
    rows, next_cursor = page.cut(
        await repository.page(session, status, page.last or 0, page.fetch), key=lambda r: r[0].id
    )
    return CampaignPage(items=[_out(*row) for row in rows], next_cursor=next_cursor)


async def get(session: AsyncSession, campaign_id: int) -> CampaignOut:
    found = await repository.get_with_stats(session, campaign_id)
    if found is None:
        raise NotFound(f"no campaign {campaign_id}")
    out = _out(*found)
    out.ab_test = await ab.report(session, found[0])  # per-variant numbers of an A/B test
    return out


async def _transition(session: AsyncSession, campaign_id: int, action: str) -> Campaign:
    campaign = await repository.get(session, campaign_id, lock=True)
    if campaign is None:
        raise NotFound(f"no campaign {campaign_id}")
    if campaign.status not in TRANSITIONS[action]:
        raise Conflict(
            f"cannot {action} a campaign that is {campaign.status}",
            [{"status": campaign.status, "action": action}],
        )
    return campaign


def start_after_commit(
    session: AsyncSession, redis: ArqRedis, campaign_id: int, at: datetime | None = None
) -> None:
    after_commit(session, lambda: dispatch.enqueue_start(redis, campaign_id, at=at))


async def _required_content(
    session: AsyncSession,
    settings: Settings,
    mail_class: str,
    version_id: int,
    name: str,
    action: str,
) -> None:
    """Bulk mail shows an unsubscribe link and the postal address (422 otherwise)."""
    if is_bulk(mail_class):
        version = await templates.version(session, version_id)
        await required.check_campaign(settings, mail_class, version, name, action)


async def launch(
    session: AsyncSession,
    settings: Settings,
    redis: ArqRedis,
    campaign_id: int,
    senders: SenderCheck | None = None,
) -> CampaignOut:
    """Send now, or at ``send_at`` when it lies in the future."""
    campaign = await _transition(session, campaign_id, "send")
    await check_sender(senders, campaign.from_address, campaign.regions)
    await _required_content(
        session,
        settings,
        campaign.mail_class,
        campaign.template_version_id,
        campaign.name,
        "launch",
    )
    now = datetime.now(UTC)
    if campaign.send_at is not None and campaign.send_at > now:
        # a start job deferred to just before send_at starts it (the reconciler is the
        # safety net)
        campaign.status = "scheduled"
        start_after_commit(session, redis, campaign_id, at=start_time(campaign.send_at))
    else:
        campaign.status = "sending"
        campaign.started_at = now
        start_after_commit(session, redis, campaign_id)
    await session.flush()
    return await get(session, campaign_id)


async def pause(
    session: AsyncSession, campaign_id: int, reason: str = "paused by user"
) -> CampaignOut:
    campaign = await _transition(session, campaign_id, "pause")
    await repository.pause(session, reason, campaign_id=campaign_id)
    await session.refresh(campaign)
    return await get(session, campaign_id)


async def resume(session: AsyncSession, redis: ArqRedis, campaign_id: int) -> CampaignOut:
    """Continue where it stopped: only queued messages are sent."""
    campaign = await _transition(session, campaign_id, "resume")
    await reputation.rearm(session, campaign_id)
    campaign.paused_reason = None
    campaign.resumed_at = datetime.now(UTC)
    not_due = campaign.send_at is not None and campaign.send_at > datetime.now(UTC)
    if campaign.audience_fixed_at is None and not_due:
        campaign.status = "scheduled"
        # a start job deferred earlier may have run (and done nothing) while paused
        start_after_commit(session, redis, campaign_id, at=start_time(campaign.send_at))
    else:
        campaign.status = "sending"
        campaign.started_at = campaign.started_at or datetime.now(UTC)
        start_after_commit(session, redis, campaign_id)
    await session.flush()
    return await get(session, campaign_id)


async def cancel(session: AsyncSession, campaign_id: int) -> CampaignOut:
    campaign = await _transition(session, campaign_id, "cancel")
    campaign.status = "cancelled"
    campaign.finished_at = datetime.now(UTC)
    await session.flush()
    await repository.cancel_queued(session, campaign_id)
    return await get(session, campaign_id)


async def messages(
    session: AsyncSession, campaign_id: int, status: str | None, page: Page[int]
) -> MessagePage:
    if await repository.get(session, campaign_id) is None:
        raise NotFound(f"no campaign {campaign_id}")
    rows, next_cursor = page.cut(
        await repository.messages_page(session, campaign_id, status, page.last or 0, page.fetch),
        key=lambda m: m.id,
    )
    items = [
        MessageOut(
            id=m.id,
            email=m.email,
            status=m.status,
            error=m.error,
            region=m.region,
            ses_message_id=m.ses_message_id,
            attempts=m.attempts,
            sent_at=m.sent_at,
        )
        for m in rows
    ]
    return MessagePage(items=items, next_cursor=next_cursor)


# A scheduled campaign's audience is fixed and its batches queued this long before its
# send_at (its messages not due before then, the campaign still ``scheduled``), so that
# the first SES call comes at send_at, not after the fix-up and the hand-out; the first
# batch jobs, at send_at, turn it ``sending``.
START_LEAD = timedelta(seconds=2)


def start_time(send_at: datetime | None) -> datetime | None:
    return None if send_at is None else send_at - START_LEAD
