"""``/v1/keys`` (admin): list API keys (never the keys themselves) and revoke them."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from mailer.auth import service
from mailer.auth.dependencies import RequireScope, Session
from mailer.auth.schemas import ApiKeyPage
from mailer.errors import Conflict
from mailer.pagination import IdPage
from mailer.types import Id

router = APIRouter(tags=["keys"], dependencies=[RequireScope.depends("admin")])


@router.get("/keys", response_model=ApiKeyPage)
async def list_keys(session: Session, page: IdPage) -> ApiKeyPage:
    return await service.page(session, page)


@router.delete("/keys/{key_id}", status_code=204)
async def revoke_key(key_id: Id, session: Session, request: Request) -> Response:
    """Revoke the key and end its dashboard sessions (revoking it again changes nothing).
    The key of the request cannot revoke itself (409): an admin would lock themselves out
    by a typo; another admin key or ``mailer keys revoke`` can."""
    if request.state.api_key.id == key_id:  # set by the router's RequireScope
        raise Conflict("a key cannot revoke itself: use another admin key or `mailer keys revoke`")
    await service.revoke(session, key_id)
    return Response(status_code=204)
