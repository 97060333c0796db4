"""Campaigns over HTTP: drafts, launch, pause, resume, cancel, test sends, their messages."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from mailer.auth.dependencies import RequireScope, Session
from mailer.campaign import service, test_sends
from mailer.campaign.schemas import (
    CampaignIn,
    CampaignOut,
    CampaignPage,
    CampaignPatch,
    MessagePage,
    TestSendIn,
)
from mailer.message import service as messages
from mailer.message.schemas import MessageOut, TestSendOut
from mailer.pagination import IdPage
from mailer.types import CampaignStatus, Id, MessageStatus

router = APIRouter(tags=["campaigns"], dependencies=[RequireScope.depends("campaigns")])


@router.post("/campaigns", status_code=201, response_model=CampaignOut)
async def create_campaign(body: CampaignIn, session: Session, request: Request) -> CampaignOut:
    return await service.create(
        session, request.app.state.settings, body, request.app.state.senders
    )


@router.get("/campaigns", response_model=CampaignPage)
async def list_campaigns(
    session: Session,
    page: IdPage,
    status: CampaignStatus | None = None,
) -> CampaignPage:
    """Campaigns by id (oldest first), optionally those in one status."""
    return await service.page(session, status, page)


@router.patch("/campaigns/{campaign_id}", response_model=CampaignOut)
async def update_campaign(
    campaign_id: Id, body: CampaignPatch, session: Session, request: Request
) -> CampaignOut:
    """Change a draft: name, template and version, segment, sender, reply-to, mail class,
    regions, schedule (the fields the body names; `reply_to` and `send_at` null remove
    them). 409 once the campaign has left `draft`."""
    return await service.update(
        session, request.app.state.settings, campaign_id, body, request.app.state.senders
    )


@router.delete("/campaigns/{campaign_id}", status_code=204)
async def delete_campaign(campaign_id: Id, session: Session) -> Response:
    """Delete a draft; 409 once it has left `draft` (cancel it instead)."""
    await service.delete(session, campaign_id)
    return Response(status_code=204)


@router.get("/campaigns/{campaign_id}", response_model=CampaignOut)
async def get_campaign(campaign_id: Id, session: Session) -> CampaignOut:
    return await service.get(session, campaign_id)


@router.post("/campaigns/{campaign_id}/send", status_code=202, response_model=CampaignOut)
async def send_campaign(campaign_id: Id, session: Session, request: Request) -> CampaignOut:
    return await service.launch(
        session,
        request.app.state.settings,
        request.app.state.arq,
        campaign_id,
        request.app.state.senders,
    )


@router.post("/campaigns/{campaign_id}/test", status_code=202, response_model=TestSendOut)
async def test_campaign(
    campaign_id: Id, body: TestSendIn, session: Session, request: Request
) -> TestSendOut:
    """The rendered campaign to these addresses only, as tests: no stats, no state change."""
    return await test_sends.send_test(
        session, request.app.state.settings, request.app.state.arq, campaign_id, body
    )


@router.post("/campaigns/{campaign_id}/pause", response_model=CampaignOut)
async def pause_campaign(campaign_id: Id, session: Session) -> CampaignOut:
    return await service.pause(session, campaign_id)


@router.post("/campaigns/{campaign_id}/resume", response_model=CampaignOut)
async def resume_campaign(campaign_id: Id, session: Session, request: Request) -> CampaignOut:
    return await service.resume(session, request.app.state.arq, campaign_id)


@router.post("/campaigns/{campaign_id}/cancel", response_model=CampaignOut)
async def cancel_campaign(campaign_id: Id, session: Session) -> CampaignOut:
    return await service.cancel(session, campaign_id)


@router.get("/campaigns/{campaign_id}/messages", response_model=MessagePage)
async def campaign_messages(
    campaign_id: Id,
    session: Session,
    page: IdPage,
    status: MessageStatus | None = None,
) -> MessagePage:
    return await service.messages(session, campaign_id, status, page)


@router.get("/campaigns/{campaign_id}/messages/{message_id}", response_model=MessageOut)
async def campaign_message(campaign_id: Id, message_id: Id, session: Session) -> MessageOut:
    """One recipient's message with its SES events (bounce and complaint details)."""
    return await messages.get(session, message_id, campaign_id=campaign_id)
