from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Query, Request
from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mailer.auth.dependencies import RequireScope, Session
from mailer.auth.service import allows
from mailer.errors import Invalid, MailerError, error_body
from mailer.message import service
from mailer.message.schemas import (
    BatchIn,
    BatchItemOut,
    BatchOut,
    MessageAccepted,
    MessageIn,
    MessageOut,
    MessagePage,
)
from mailer.middleware import BadJson, is_json, parse_json
from mailer.pagination import IdPage
from mailer.types import Id, MessageStatus

router = APIRouter(tags=["messages"], dependencies=[RequireScope.depends("transactional")])


@router.post("/messages", status_code=202, response_model=MessageAccepted)
async def send_message(
    body: MessageIn,
    session: Session,
    request: Request,
    idempotency_key: Annotated[str | None, Header(max_length=1000)] = None,
) -> MessageAccepted:
    key = service.check_key(idempotency_key, ["header", "Idempotency-Key"])
    [answer] = await service.accept(
        session,
        request.app.state.settings,
        request.app.state.arq,
        request.state.api_key.id,
        [service.Request(body, key, ["body"])],
    )
    if isinstance(answer, MailerError):
        raise answer
    return answer


def _invalid(exc: ValidationError, path: list[str | int]) -> Invalid:
    details = [
        {"path": [*path, *err["loc"]], "message": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False, include_context=False)
    ]
    first = details[0]
    return Invalid(f"{'.'.join(map(str, first['path']))}: {first['message']}", details)


@router.post("/messages/batch", response_model=BatchOut)
async def send_batch(body: BatchIn, session: Session, request: Request) -> BatchOut:
    """Each item is answered on its own: 202 with its message, or its own 409/422."""
    requests: list[service.Request] = []
    failed: dict[int, MailerError] = {}
    for i, raw in enumerate(body.messages):
        path: list[str | int] = ["body", "messages", i]
        item: dict[str, Any] = dict(raw)
        try:
            key = item.pop("idempotency_key", None)
            if key is not None and not isinstance(key, str):
                raise Invalid.at([*path, "idempotency_key"], "must be a string")
            key = service.check_key(key, [*path, "idempotency_key"])
            requests.append(service.Request(MessageIn.model_validate(item), key, path))
        except ValidationError as exc:
            failed[i] = _invalid(exc, path)
        except MailerError as exc:
            failed[i] = exc
    answers = iter(
        await service.accept(
            session,
            request.app.state.settings,
            request.app.state.arq,
            request.state.api_key.id,
            requests,
        )
    )
    items = []
    for i in range(len(body.messages)):
        answer = failed.get(i) or next(answers)
        if isinstance(answer, MailerError):
            items.append(
                BatchItemOut(
                    index=i,
                    status_code=answer.status_code,
                    error=error_body(answer.code, answer.message, answer.details)["error"],
                )
            )
        else:
            items.append(BatchItemOut(index=i, status_code=202, id=answer.id, status=answer.status))
    return BatchOut(items=items)


@router.get("/messages/{message_id}", response_model=MessageOut)
async def get_message(message_id: Id, session: Session) -> MessageOut:
    return await service.get(session, message_id)


@router.get("/messages", response_model=MessagePage)
async def list_messages(
    session: Session,
    page: IdPage,
    to: Annotated[str | None, Query(max_length=320)] = None,
    status: MessageStatus | None = None,
) -> MessagePage:
    return await service.page(session, to, status, page)


MESSAGES_PATH = "/v1/messages"
_JSON_HEADERS = (b"content-type", b"application/json")


class MessagesEndpoint:
    """``POST /v1/messages`` for the common case as a bare ASGI app: what the route above
    does, without the router and dependency machinery, each message committed in a group
    with the others arriving meanwhile (``mailer.message.intake``).

    Only a request that passes every check is answered here: a JSON body the guard admits,
    a live key with the scope (``KeyCache``), a sane Idempotency-Key and a valid
    ``MessageIn``. Anything else is handed to ``fallback`` (the whole app, its body
    replayed), so every refusal (401, 403, 422 with its path, 413) is the app's own.
    """

    def __init__(self, state: Any, fallback: ASGIApp) -> None:
        self.state = state  # the app's state: the lifespan fills it
        self.fallback = fallback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away: nobody to answer
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        raw = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        accepted = await self._accept(scope, raw)
        if accepted is None:
            await self.fallback(scope, _replay(raw, receive), send)
            return
        if isinstance(accepted, MailerError):
            status = accepted.status_code
            payload = orjson.dumps(error_body(accepted.code, accepted.message, accepted.details))
        else:
            status, payload = 202, orjson.dumps({"id": accepted.id, "status": accepted.status})
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [_JSON_HEADERS, (b"content-length", str(len(payload)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    async def _accept(self, scope: Scope, raw: bytes) -> MessageAccepted | MailerError | None:
        """The answer, or None for a request the app itself must answer."""
        query = scope["query_string"]
        if b"%00" in query or b"\x00" in query or not raw or not is_json(scope):
            return None
        try:
            value = parse_json(raw)
        except BadJson:
            return None
        authorization = idempotency_key = None
        for name, header in scope["headers"]:
            if name == b"authorization" and authorization is None:
                authorization = header.decode("latin-1")
            elif name == b"idempotency-key" and idempotency_key is None:
                idempotency_key = header.decode("latin-1")
        scheme, _, secret = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            return None
        key = await self.state.api_keys.authenticate(secret.strip())
        if key is None or not allows(key, "transactional"):
            return None
        try:
            checked = service.check_key(idempotency_key, ["header", "Idempotency-Key"])
            body = MessageIn.model_validate(value)
        except (Invalid, ValidationError):
            return None
        scope.setdefault("state", {})["api_key"] = key
        return await self.state.intake.accept(key.id, service.Request(body, checked, ["body"]))


def _replay(raw: bytes, receive: Receive) -> Receive:
    """The body again, then whatever the client sends next (its going away)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": raw, "more_body": False}

    return replayed
