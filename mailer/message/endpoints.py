"""Transactional messages over HTTP: the lean accept handlers (one and batch), reads and lists."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Query, Request
from pydantic import ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from mailer.auth.dependencies import RequireScope, Session
from mailer.auth.service import allows
from mailer.errors import Invalid, MailerError, error_body, plain_message
from mailer.json_body import BadJson, is_json, parse_json
from mailer.message import service
from mailer.message.schemas import (
    BatchIn,
    BatchItemOut,
    BatchOut,
    ContactMessagePage,
    MessageAccepted,
    MessageIn,
    MessageOut,
    MessagePage,
)
from mailer.middleware import (
    BodyTooLarge,
    answer_too_large,
    bearer,
    declared_length,
    has_body,
    header,
    read_body,
    replay,
)
from mailer.models import ApiKey
from mailer.pagination import IdPage
from mailer.types import Id, MessageStatus

router = APIRouter(tags=["messages"], dependencies=[RequireScope.depends("transactional")])
# a contact's mail, campaign and transactional alike, read as the contact's history
contact_router = APIRouter(tags=["contacts"], dependencies=[RequireScope.depends("campaigns")])


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
        senders=request.app.state.senders,
    )
    if isinstance(answer, MailerError):
        raise answer
    return answer


def _invalid(exc: ValidationError, path: list[str | int]) -> Invalid:
    details = [
        {"path": [*path, *err["loc"]], "message": plain_message(err["msg"]), "type": err["type"]}
        for err in exc.errors(include_url=False, include_context=False)
    ]
    first = details[0]
    return Invalid(f"{'.'.join(map(str, first['path']))}: {first['message']}", details)


@router.post("/messages/batch", response_model=BatchOut)
async def accept_batch(
    body: BatchIn,
    session: Session,
    request: Request,
    idempotency_key: Annotated[str | None, Header(max_length=1000)] = None,
) -> BatchOut:
    """Each item is answered on its own: 202 with its message, or its own 409/422.
    Idempotency keys go per item (`messages[i].idempotency_key`), not in the header."""
    if idempotency_key is not None:
        raise Invalid.at(
            ["header", "Idempotency-Key"],
            "a batch takes no Idempotency-Key header: give each item its own"
            " idempotency_key (messages[i].idempotency_key)",
        )
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
            senders=request.app.state.senders,
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


@contact_router.get("/contacts/{email}/messages", response_model=ContactMessagePage)
async def contact_messages(email: str, session: Session, page: IdPage) -> ContactMessagePage:
    """The campaign and transactional messages sent to the contact, newest first, each with
    its status, its campaign and its first 50 events (delivery, bounce, complaint, open,
    click…). 404 when there is no such contact."""
    return await service.of_contact(session, email, page)


MESSAGES_PATH = "/v1/messages"
_JSON_HEADERS = (b"content-type", b"application/json")


class MessagesEndpoint:
    """``POST /v1/messages`` for the common case as a bare ASGI app: what the route above
    does, without the router and dependency machinery, each message committed in a group
    with the others arriving meanwhile (``mailer.message.intake``).

    Only a request that passes every check is answered here: a live key with the scope
    (``KeyCache``, looked up before any of the body is read), a JSON body within the limit
    that the app's guard admits, a sane Idempotency-Key and a valid ``MessageIn``. Anything
    else is handed to ``fallback`` (the whole app, a body read already replayed), so every
    refusal (401, 403, 413, 422 with its path) is the app's own.
    """

    def __init__(self, state: Any, fallback: ASGIApp) -> None:
        self.state = state  # the app's state: the lifespan fills it
        self.fallback = fallback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = await self._caller(scope)
        if key is None:  # the app answers, the body unread
            await self.fallback(scope, receive, send)
            return
        try:
            raw = await read_body(receive, self.state.settings.max_body_bytes)
        except BodyTooLarge as exc:
            await answer_too_large(send, exc.limit, close=True)
            return
        if raw is None:
            return  # the client went away: nobody to answer
        accepted = await self._accept(scope, key, raw)
        if accepted is None:
            await self.fallback(scope, replay(raw, receive), send)
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

    async def _caller(self, scope: Scope) -> ApiKey | None:
        """The caller's key when the request may be answered here, before its body is read."""
        query = scope["query_string"]
        if b"%00" in query or b"\x00" in query or not is_json(scope) or not has_body(scope):
            return None
        length = declared_length(scope)
        if length is not None and length > self.state.settings.max_body_bytes:
            return None
        secret = bearer(scope)
        if secret is None:
            return None
        key: ApiKey | None = await self.state.api_keys.authenticate(secret)
        if key is None or not allows(key, "transactional"):
            return None
        return key

    async def _accept(
        self, scope: Scope, key: ApiKey, raw: bytes
    ) -> MessageAccepted | MailerError | None:
        """The answer, or None for a request the app itself must answer."""
        try:
            value = parse_json(raw)
        except BadJson:
            return None
        raw_key = header(scope, b"idempotency-key")
        idempotency_key = None if raw_key is None else raw_key.decode("latin-1")
        try:
            checked = service.check_key(idempotency_key, ["header", "Idempotency-Key"])
            body = MessageIn.model_validate(value)
        except (Invalid, ValidationError):
            return None
        scope.setdefault("state", {})["api_key"] = key
        return await self.state.intake.accept(key.id, service.Request(body, checked, ["body"]))
