"""GET /v1/reputation: the operator's report."""

from __future__ import annotations

from fastapi import APIRouter, Request

from mailer.auth.dependencies import RequireScope, Session
from mailer.reputation import service
from mailer.reputation.schemas import ReputationOut

router = APIRouter(tags=["reputation"], dependencies=[RequireScope.depends("reputation")])


@router.get("/reputation", response_model=ReputationOut)
async def get_reputation(session: Session, request: Request) -> ReputationOut:
    """Bounce and complaint numbers per mail class, region and campaign; region quotas."""
    return await service.report(session, request.app.state.settings)
