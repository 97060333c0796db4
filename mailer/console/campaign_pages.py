"""Campaigns: the list, the wizard, the review with a test send, launch, the page with live
progress and pause/resume/cancel, the failed recipients. Every change goes through the
campaign service (as the API's routes do) and is recorded with who made it."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from mailer.audience import service as segments
from mailer.auth.dependencies import Session
from mailer.campaign import service as campaigns
from mailer.campaign import test_sends
from mailer.campaign.schemas import CampaignIn, TestSendIn
from mailer.console.roles import EDIT, PAUSE, VIEW
from mailer.console.subscription_pages import all_topics
from mailer.console.web import Blank, back, form, parse, render, route, viewer_of
from mailer.contact import service as contacts
from mailer.errors import Invalid
from mailer.pagination import DEFAULT_LIMIT, IdPage, Page, id_cursor
from mailer.people import service as people
from mailer.reputation import service as reputation
from mailer.ses import identities as ses_identities
from mailer.template import service as templates
from mailer.template.schemas import RenderIn
from mailer.types import CampaignStatus

FIRST_PAGE: Page[int] = Page(None, DEFAULT_LIMIT, id_cursor)
CHOICES = 200  # templates and segments offered in the wizard
DONE = {
    "launch": "campaign.launched",
    "pause": "campaign.paused",
    "resume": "campaign.resumed",
    "cancel": "campaign.cancelled",
}


@route("GET", "/campaigns", VIEW)
async def campaign_list(
    request: Request,
    session: Session,
    page: IdPage,
    status: Annotated[CampaignStatus | None, Blank] = None,
) -> Response:
    found = await campaigns.page(session, status, page)
    return render(
        request,
        "campaigns.html",
        campaigns=found.items,
        next_cursor=found.next_cursor,
        chosen=status,
    )


@lru_cache(maxsize=1)
def _zones() -> list[str]:
    # available_timezones() walks the tz database on disk: once per process is enough
    return sorted(available_timezones())


def _send_at(raw: str, zone: str) -> datetime | None:
    if not raw.strip():
        return None
    try:
        tz = ZoneInfo(zone or "UTC")
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise Invalid.at(["body", "time_zone"], f"unknown time zone {zone!r}") from exc
    try:
        local = datetime.fromisoformat(raw.strip())
    except ValueError as exc:
        raise Invalid.at(["body", "send_at"], "a date and time, e.g. 2030-03-01T09:00") from exc
    return local.replace(tzinfo=tz) if local.tzinfo is None else local


@route("GET", "/campaigns/new", EDIT)
async def wizard(request: Request, session: Session) -> Response:
    """The wizard; From and Reply-To offered from the SES account's verified identities
    (any address may still be typed)."""
    settings = request.app.state.settings
    limit: Page[int] = Page(None, CHOICES, id_cursor)
    return render(
        request,
        "campaign_new.html",
        templates=(await templates.page(session, limit)).items,
        segments=(await segments.page(session, limit)).items,
        topics=await all_topics(session),
        mail_classes=list(settings.configuration_sets),
        regions=settings.regions,
        zones=_zones(),
        configured_sender=settings.console_mail_from,
        identities=await ses_identities.verified(settings),
        all_regions=tuple(settings.regions),
    )


@route("POST", "/campaigns", EDIT)
async def create(request: Request, session: Session) -> Response:
    data = await form(request)
    settings = request.app.state.settings
    body: dict[str, Any] = {
        "name": data.get("name", ""),
        "template_id": data.get("template_id") or None,
        "template_version": data.get("template_version") or None,
        "segment_id": data.get("segment_id") or None,
        "topic_id": data.get("topic_id") or None,
        "from_address": data.get("from_address", ""),
        "reply_to": data.get("reply_to") or None,
        "mail_class": data.get("mail_class") or "marketing",
        "regions": [r for r in (await request.form()).getlist("regions") if isinstance(r, str)]
        or None,
        "send_at": _send_at(data.get("send_at", ""), data.get("time_zone", "UTC")),
    }
    created = await campaigns.create(
        session, settings, parse(CampaignIn, body), request.app.state.senders
    )
    await people.record(
        session,
        viewer_of(request).actor,
        "campaign.created",
        "campaign",
        created.id,
        {"name": created.name},
    )
    return back(f"/console/campaigns/{created.id}")


async def _review(session: Session, settings: Any, campaign: Any) -> dict[str, Any]:
    """What to check before launch: audience, subject as rendered, unsubscribe link, quota."""
    segment = await segments.read(session, campaign.segment_id)
    # rendered as its first recipient would get it (strict templates need their data);
    # the counts come from the page's script (they take a scan of the contacts)
    first = await contacts.page(session, segment.filter, Page(None, 1, id_cursor))
    review: dict[str, Any] = {
        "subject": None,
        "problem": None,
        "as": first.items[0].email if first.items else None,
    }
    try:
        rendered = await templates.render(
            session,
            settings,
            campaign.template_id,
            RenderIn(mail_class="marketing", email=review["as"]),
        )
        review["subject"] = rendered.subject
        review["unsubscribe"] = "/unsubscribe/" in rendered.html
        review["list_unsubscribe"] = "List-Unsubscribe" in rendered.headers
    except Invalid as exc:
        review["problem"] = exc.message
    report = await reputation.report(session, settings)
    # no regions named: the campaign goes out through every configured one
    review["regions"] = [
        r for r in report.regions if not campaign.regions or r.region in campaign.regions
    ]
    return review


@route("GET", "/campaigns/{campaign_id}", VIEW)
async def campaign_page(request: Request, campaign_id: int, session: Session) -> Response:
    settings = request.app.state.settings
    campaign = await campaigns.get(session, campaign_id)
    review = await _review(session, settings, campaign) if campaign.status == "draft" else None
    failed = await campaigns.messages(session, campaign_id, "failed", FIRST_PAGE)
    history = await people.history(session, "campaign", campaign_id)
    return render(
        request,
        "campaign.html",
        campaign=campaign,
        review=review,
        failed=failed.items,
        history=history,
        tested=request.query_params.get("tested"),
    )


@route("GET", "/campaigns/{campaign_id}/status", VIEW)
async def campaign_status(request: Request, campaign_id: int, session: Session) -> Response:
    """The live numbers of the campaign page (its script polls this)."""
    campaign = await campaigns.get(session, campaign_id)
    stats = campaign.stats
    return JSONResponse(
        {
            "status": campaign.status,
            "paused_reason": campaign.paused_reason,
            "progress": campaigns.progress(stats.recipients, stats.queued),
            "stats": stats.model_dump(),
        },
        headers={"Cache-Control": "no-store"},
    )


@route("POST", "/campaigns/{campaign_id}/test", EDIT)
async def test_send(request: Request, campaign_id: int, session: Session) -> Response:
    data = await form(request)
    to = [a.strip() for a in data.get("to", "").replace(";", ",").split(",") if a.strip()]
    body = parse(TestSendIn, {"to": to})
    sent = await test_sends.send_test(
        session, request.app.state.settings, request.app.state.arq, campaign_id, body
    )
    await people.record(
        session,
        viewer_of(request).actor,
        "campaign.test_sent",
        "campaign",
        campaign_id,
        {"to": to},
    )
    return back(f"/console/campaigns/{campaign_id}?tested={len(sent.messages)}")


async def _act(request: Request, session: Session, campaign_id: int, action: str) -> Response:
    viewer = viewer_of(request)
    redis = request.app.state.arq
    if action == "launch":
        await campaigns.launch(
            session, request.app.state.settings, redis, campaign_id, request.app.state.senders
        )
    elif action == "pause":
        await campaigns.pause(session, campaign_id, reason=f"paused by {viewer.person.email}")
    elif action == "resume":
        await campaigns.resume(session, redis, campaign_id)
    else:
        await campaigns.cancel(session, campaign_id)
    await people.record(session, viewer.actor, DONE[action], "campaign", campaign_id)
    return back(f"/console/campaigns/{campaign_id}")


@route("POST", "/campaigns/{campaign_id}/launch", EDIT)
async def launch(request: Request, campaign_id: int, session: Session) -> Response:
    return await _act(request, session, campaign_id, "launch")


@route("POST", "/campaigns/{campaign_id}/pause", PAUSE)
async def pause(request: Request, campaign_id: int, session: Session) -> Response:
    return await _act(request, session, campaign_id, "pause")


@route("POST", "/campaigns/{campaign_id}/resume", PAUSE)
async def resume(request: Request, campaign_id: int, session: Session) -> Response:
    return await _act(request, session, campaign_id, "resume")


@route("POST", "/campaigns/{campaign_id}/cancel", EDIT)
async def cancel(request: Request, campaign_id: int, session: Session) -> Response:
    return await _act(request, session, campaign_id, "cancel")
