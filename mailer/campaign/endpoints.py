from __future__ import annotations

from fastapi import APIRouter, Request

from mailer.auth.dependencies import RequireScope, Session
from mailer.campaign import service
from mailer.campaign.schemas import CampaignIn, CampaignOut, MessagePage, TestSendIn
from mailer.message import service as messages
from mailer.message.schemas import TestSendOut
from mailer.pagination import IdPage
from mailer.types import Id, MessageStatus

router = APIRouter(tags=["campaigns"], dependencies=[RequireScope.depends("campaigns")])


@router.post("/campaigns", status_code=201, response_model=CampaignOut)
async def create_campaign(body: CampaignIn, session: Session, request: Request) -> CampaignOut:
    return await service.create(session, request.app.state.settings, body)


@router.get("/campaigns/{campaign_id}", response_model=CampaignOut)
async def get_campaign(campaign_id: Id, session: Session) -> CampaignOut:
    return await service.get(session, campaign_id)


@router.post("/campaigns/{campaign_id}/send", status_code=202, response_model=CampaignOut)
async def send_campaign(campaign_id: Id, session: Session, request: Request) -> CampaignOut:
    return await service.launch(session, request.app.state.arq, campaign_id)


@router.post("/campaigns/{campaign_id}/test", status_code=202, response_model=TestSendOut)
async def test_campaign(
    campaign_id: Id, body: TestSendIn, session: Session, request: Request
) -> TestSendOut:
    """The rendered campaign to these addresses only, as tests: no stats, no state change."""
    return await messages.test_send(session, request.app.state.arq, campaign_id, body)


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
