from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request
from pydantic import ValidationError

from mailer.auth.dependencies import RequireScope, Session
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
from mailer.types import Id

router = APIRouter(tags=["messages"], dependencies=[RequireScope.depends("transactional")])

MessageStatus = Literal[
    "queued",
    "claimed",
    "sending",
    "sent",
    "delivered",
    "bounced",
    "complained",
    "failed",
    "suppressed",
    "cancelled",
]


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
    to: Annotated[str | None, Query(max_length=320)] = None,
    status: MessageStatus | None = None,
    cursor: Annotated[str | None, Query(max_length=20)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> MessagePage:
    return await service.page(session, to, status, cursor, limit)
