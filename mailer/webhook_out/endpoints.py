"""``/v1/webhooks`` (scope ``webhooks`` or ``admin``): endpoints, their secret, their
delivery log, retry, replay and the test event."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from mailer.auth.dependencies import RequireScope, Session
from mailer.errors import Invalid
from mailer.pagination import IdPage
from mailer.types import Id
from mailer.webhook_out import service
from mailer.webhook_out.schemas import (
    SINCE_PATTERN,
    DeliveryOut,
    DeliveryPage,
    DeliveryStatus,
    EndpointCreated,
    EndpointIn,
    EndpointOut,
    EndpointPage,
    EndpointPatch,
    ReplayOut,
    RotateIn,
    RotateOut,
)
from mailer.webhook_out.tasks import wake_after_commit

router = APIRouter(tags=["webhooks"], dependencies=[RequireScope.depends("webhooks")])


@router.post("/webhooks", response_model=EndpointCreated, status_code=201)
async def create_endpoint(body: EndpointIn, session: Session, request: Request) -> EndpointCreated:
    """Register an endpoint; the answer carries its signing secret, shown this once."""
    return await service.create(session, request.app.state.settings, body)


@router.get("/webhooks", response_model=EndpointPage)
async def list_endpoints(session: Session, page: IdPage) -> EndpointPage:
    return await service.page(session, page)


@router.get("/webhooks/{endpoint_id}", response_model=EndpointOut)
async def get_endpoint(endpoint_id: Id, session: Session) -> EndpointOut:
    return await service.get(session, endpoint_id)


@router.patch("/webhooks/{endpoint_id}", response_model=EndpointOut)
async def patch_endpoint(
    endpoint_id: Id, body: EndpointPatch, session: Session, request: Request
) -> EndpointOut:
    """Change what is given; ``enabled: true`` on a disabled endpoint starts it afresh."""
    out = await service.patch(session, request.app.state.settings, endpoint_id, body)
    wake_after_commit(session, request.app.state.arq)
    return out


@router.delete("/webhooks/{endpoint_id}", status_code=204)
async def delete_endpoint(endpoint_id: Id, session: Session) -> Response:
    await service.delete(session, endpoint_id)
    return Response(status_code=204)


@router.post("/webhooks/{endpoint_id}/rotate-secret", response_model=RotateOut)
async def rotate_secret(endpoint_id: Id, body: RotateIn, session: Session) -> RotateOut:
    """A new secret, shown once; both sign during the overlap."""
    return await service.rotate(session, endpoint_id, body)


@router.get("/webhooks/{endpoint_id}/deliveries", response_model=DeliveryPage)
async def list_deliveries(
    endpoint_id: Id, session: Session, page: IdPage, status: DeliveryStatus | None = None
) -> DeliveryPage:
    """Newest first: status, attempts, the last answer and when, the next attempt."""
    return await service.deliveries(session, endpoint_id, page, status)


@router.post(
    "/webhooks/{endpoint_id}/deliveries/{delivery_id}/retry",
    response_model=DeliveryOut,
    status_code=202,
)
async def retry_delivery(
    endpoint_id: Id, delivery_id: Id, session: Session, request: Request
) -> DeliveryOut:
    out = await service.retry(session, endpoint_id, delivery_id)
    wake_after_commit(session, request.app.state.arq)
    return out


@router.post("/webhooks/{endpoint_id}/replay", response_model=ReplayOut, status_code=202)
async def replay(
    endpoint_id: Id,
    since: Annotated[
        str,
        Query(
            description="re-send the events written since then (RFC 3339, with its offset)",
            pattern=SINCE_PATTERN,
            max_length=40,
            examples=["2026-12-07T10:00:00Z"],
        ),
    ],
    session: Session,
    request: Request,
) -> ReplayOut:
    out = await service.replay(session, endpoint_id, parse_since(since))
    wake_after_commit(session, request.app.state.arq)
    return out


@router.post("/webhooks/{endpoint_id}/test", response_model=DeliveryOut, status_code=202)
async def send_test(endpoint_id: Id, session: Session, request: Request) -> DeliveryOut:
    """A ``webhook.test`` event, delivered like any other."""
    out = await service.test(session, endpoint_id)
    wake_after_commit(session, request.app.state.arq)
    return out


def parse_since(raw: str) -> datetime:
    try:
        return datetime.fromisoformat(raw.replace("z", "Z"))
    except ValueError as exc:
        raise Invalid.at(["query", "since"], "not a time: RFC 3339 with its offset") from exc
