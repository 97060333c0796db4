"""The console's home page and its script, and the router with every page on it."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from fastapi import Request
from fastapi.responses import Response

from mailer.auth.dependencies import Session
from mailer.campaign import service as campaigns
from mailer.console import (  # noqa: F401 - each module adds its routes to the router
    campaign_pages,
    contact_pages,
    people_pages,
    segment_pages,
    signin,
    subscription_pages,
    suppression_pages,
    template_pages,
)
from mailer.console.roles import PUBLIC, VIEW
from mailer.console.web import render, route, router
from mailer.pagination import Page, id_cursor

__all__ = ["router"]


@lru_cache
def _script(directory: Path) -> bytes:
    return (directory / "console" / "console.js").read_bytes()


@route("GET", "/static/console.js", PUBLIC)
async def script(request: Request) -> Response:
    return Response(
        _script(request.app.state.settings.templates_dir),
        media_type="text/javascript; charset=utf-8",
        headers={"Cache-Control": "max-age=300", "X-Content-Type-Options": "nosniff"},
    )


@route("GET", "", VIEW)
async def home(request: Request, session: Session) -> Response:
    sending = await campaigns.page(session, "sending", Page(None, 20, id_cursor))
    drafts = await campaigns.page(session, "draft", Page(None, 20, id_cursor))
    return render(request, "home.html", sending=sending.items, drafts=drafts.items)
