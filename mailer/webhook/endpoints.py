"""``POST /webhooks/sns``: public, verified by signature instead of a key.

SNS posts thousands a second, so the route is served by a lean ASGI handler
(:class:`SnsEndpoint`) that the app dispatches to before its middleware stack and router
(``mailer.app.MailerAPI``), wrapped in the same ``RequestContext`` (request id, 500
envelope) and ``BodyGate`` (SNS's body limit, the JSON and URL checks) as every other
route. The Starlette route below is what the OpenAPI document lists; it answers the same
way should anything reach it.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from mailer.errors import MailerError, error_body
from mailer.middleware import read_body, send_json
from mailer.webhook import store
from mailer.webhook.sns import verify

SNS_PATH = "/webhooks/sns"

router = APIRouter(tags=["webhooks"])


async def sns_webhook(request: Request) -> JSONResponse:
    """SNS posts ``text/plain``: the raw body is verified before anything is read from it.
    200 once stored (a retry of a stored message is a 200 too), 400 malformed, 403 not
    genuine, 503 not stored (SNS delivers it again)."""
    state = request.app.state
    settings = state.settings
    raw = await request.body()
    message = await verify(
        raw, state.sns_certs, settings.sns_topic_arns, require_v2=settings.sns_require_v2
    )
    stored = await store.receive(state.sns_store, state.sns_http, message, raw)
    return JSONResponse({"stored": stored, "type": message.type})


router.add_route(SNS_PATH, sns_webhook, methods=["POST"], include_in_schema=True)

_JSON_HEADERS = (b"content-type", b"application/json")


class SnsEndpoint:
    """``POST /webhooks/sns`` as a bare ASGI app: what ``sns_webhook`` does, without the
    router and dependency machinery (the app wraps it in a ``BodyGate``).

    ``MailerError`` renders as the app's handler renders it; anything else propagates to
    ``RequestContext`` (logged, 500 envelope). The answer is sent after the commit.
    """

    def __init__(self, state: Any) -> None:
        self.state = state  # the app's state: the lifespan fills it (tests may swap parts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = self.state
        settings = state.settings
        raw = await read_body(receive, settings.sns_max_body_bytes)
        if raw is None:
            return  # the client went away: nobody to answer
        try:
            sns = await verify(
                raw, state.sns_certs, settings.sns_topic_arns, require_v2=settings.sns_require_v2
            )
            stored = await store.receive(state.sns_store, state.sns_http, sns, raw)
        except MailerError as exc:
            body = error_body(exc.code, exc.message, exc.details)
            await send_json(send, exc.status_code, body)
            return
        payload = orjson.dumps({"stored": stored, "type": sns.type})
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [_JSON_HEADERS, (b"content-length", str(len(payload)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": payload})
