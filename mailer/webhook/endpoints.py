"""``POST /webhooks/sns``: public, verified by signature instead of a key."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from mailer.webhook import service
from mailer.webhook.sns import verify

router = APIRouter(tags=["webhooks"])


async def sns_webhook(request: Request) -> JSONResponse:
    """SNS posts ``text/plain``: the raw body is verified before anything is read from it.
    200 once stored (a retry of a stored message is a 200 too), 400 malformed, 403 not
    genuine, 503 not stored (SNS delivers it again)."""
    state = request.app.state
    raw = await request.body()
    message = await verify(raw, state.sns_certs, state.settings.sns_topic_arns)
    stored = await service.receive(state.sns_store, state.sns_http, message, raw)
    return JSONResponse({"stored": stored, "type": message.type})


# a plain Starlette route: SNS posts thousands a second, and it needs none of FastAPI's
# dependency and validation machinery (errors still render through the app's handlers)
router.add_route("/webhooks/sns", sns_webhook, methods=["POST"], include_in_schema=True)
