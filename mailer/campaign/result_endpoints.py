from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from mailer.auth.dependencies import RequireScope, Session
from mailer.campaign import ab_tests as ab
from mailer.campaign import results as reports
from mailer.campaign import service as campaigns
from mailer.campaign.result_schemas import LinkPage, ProviderPage, RetryOut, TimelinePage, WinnerIn
from mailer.campaign.schemas import CampaignOut
from mailer.pagination import IdPage, KeyPage
from mailer.types import Id

router = APIRouter(tags=["campaigns"], dependencies=[RequireScope.depends("campaigns")])


@router.get("/campaigns/{campaign_id}/links", response_model=LinkPage)
async def campaign_links(campaign_id: Id, session: Session, page: KeyPage) -> LinkPage:
    """Each clicked link of the campaign (by link): clicks, clicking messages, and those
    with a human click (docs/engagement.md), with the SES `linkTags`."""
    return await reports.links(session, campaign_id, page)


@router.get("/campaigns/{campaign_id}/providers", response_model=ProviderPage)
async def campaign_providers(campaign_id: Id, session: Session, page: KeyPage) -> ProviderPage:
    """Deliveries, bounces, complaints, delays and opens of the campaign per mailbox
    provider (recipient domains grouped: Gmail, Outlook, Yahoo/AOL, Apple iCloud, others
    by domain), by provider name."""
    return await reports.providers(session, campaign_id, page)


@router.get("/campaigns/{campaign_id}/timeline", response_model=TimelinePage)
async def campaign_timeline(campaign_id: Id, session: Session, page: IdPage) -> TimelinePage:
    """Sends, deliveries, opens, clicks, bounces and complaints per 10 minutes, oldest
    first (from rollups; sends, deliveries, bounces and complaints leave mailbox-simulator
    mail out, as reputation does)."""
    return await reports.timeline(session, campaign_id, page)


@router.get(
    "/campaigns/{campaign_id}/recipients.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "one row per recipient"}},
)
async def campaign_recipients_csv(
    campaign_id: Id, session: Session, request: Request
) -> StreamingResponse:
    """Every recipient (streamed, in message order): status, sent time, failure reason,
    retry, opens and clicks (with human ones) and their first times. Erased contacts have
    an empty address."""
    span = await reports.export_span(session, campaign_id)
    return StreamingResponse(
        reports.recipients_csv(request.app.state.engine, campaign_id, span),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="campaign-{campaign_id}.csv"'},
    )


@router.post("/campaigns/{campaign_id}/retry", status_code=202, response_model=RetryOut)
async def retry_campaign(campaign_id: Id, session: Session, request: Request) -> RetryOut:
    """Queue the campaign's failed messages again whose failure allows it: those the send
    path gave up on after transient errors (timeouts, SES 5xx, connection), never a
    rejection for content, an invalid address, a render error, a suppressed or
    unsubscribed recipient, nor a message retried before. Counted in `stats.retried`.
    A second call (also at the same time) retries nothing more. 409 for a campaign that is
    not sending, paused or completed."""
    return await reports.retry(session, request.app.state.arq, campaign_id)


@router.post("/campaigns/{campaign_id}/winner", status_code=202, response_model=CampaignOut)
async def pick_winner(
    campaign_id: Id, body: WinnerIn, session: Session, request: Request
) -> CampaignOut:
    """Decide a campaign's A/B test now: the rest of its recipients get this variant
    (docs/engagement.md). 409 when the test has not started or was decided already."""
    await ab.decide(session, request.app.state.arq, campaign_id, picked=body.variant)
    return await campaigns.get(session, campaign_id)
