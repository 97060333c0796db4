"""Transactional messages: accepted once per idempotency key, sent on their own lane.

A message is a row in ``messages`` with ``campaign_id IS NULL``: its content is a stored
template version or inline templates, its data the request's. It is enqueued after the
commit on the transactional queue, where a small pool of senders of every worker takes it
before any marketing mail (``mailer.sending.sender``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from arq import ArqRedis
from sqlalchemy.ext.asyncio import AsyncSession

from mailer import queues
from mailer.config import Settings
from mailer.contact import repository as contacts
from mailer.contact.addresses import normalise, valid_address, valid_mailbox
from mailer.errors import Conflict, Invalid, MailerError, NotFound, Unavailable
from mailer.message import repository
from mailer.message.schemas import (
    ContactMessage,
    ContactMessagePage,
    EventOut,
    MessageAccepted,
    MessageIn,
    MessageOut,
    MessagePage,
    MessageSummary,
)
from mailer.models import Event, Message, TemplateVersion
from mailer.pagination import Page
from mailer.queues import TRANSACTIONAL_QUEUE
from mailer.ses.senders import SenderCheck, SenderNotVerified
from mailer.template import service as templates
from mailer.template.compiler import compiled_version
from mailer.template.layouts import wrap_fragment
from mailer.template.render import (
    CompiledTemplate,
    message_context,
    render_problem,
)

MAX_KEY_LENGTH = 255


@dataclass(slots=True)
class Request:
    """One message to accept: its body, its idempotency key and where its fields sit."""

    body: MessageIn
    key: str | None
    path: list[str | int]


def request_hash(body: MessageIn) -> str:
    """SHA-256 of the canonical body: the same body in any key order hashes the same."""
    canonical = json.dumps(
        body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_key(key: str | None, path: list[str | int]) -> str | None:
    if key is None:
        return None
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable() or not key.isascii():
        raise Invalid.at(
            path, f"an idempotency key is 1-{MAX_KEY_LENGTH} printable ASCII characters"
        )
    return key


@lru_cache(maxsize=512)
def _inline_error(templates_dir: Path, subject: str, html: str, text: str | None) -> Invalid | None:
    # inline content is checked like a stored template; the same content often repeats
    try:
        templates.validate(templates_dir, subject, html, text)
    except Invalid as exc:
        return exc
    return None


def _under(path: list[str | int], exc: Invalid) -> Invalid:
    """``exc`` with its paths (``["body", field]``) moved under ``path``."""
    details = [{**d, "path": [*path, *d.get("path", [])[1:]]} for d in exc.details]
    return Invalid(exc.message, details)


async def _row(
    session: AsyncSession, settings: Settings, req: Request, versions: dict[int, TemplateVersion]
) -> dict[str, Any]:
    """The ``messages`` row of one request, every field checked (a 422 with its path)."""
    body, path = req.body, req.path
    row: dict[str, Any] = {
        "email": valid_address(body.to, [*path, "to"]),
        "from_address": valid_mailbox(body.from_address, [*path, "from_address"]),
        "reply_to": (valid_mailbox(body.reply_to, [*path, "reply_to"]) if body.reply_to else None),
        "mail_class": body.mail_class,
        "data": body.data,
        "tags": body.tags or None,
        "headers": body.headers or None,
        "template_version_id": None,
        "subject": None,
        "html": None,
        "text_body": None,
    }
    if body.mail_class not in settings.configuration_sets:
        raise Invalid.at(
            [*path, "mail_class"],
            f"unknown mail class; one of {', '.join(settings.configuration_sets)}",
        )
    if body.template_id is not None:
        if body.template_id not in versions:
            try:
                version = await templates.current_version(session, body.template_id)
            except NotFound as exc:
                raise Invalid.at([*path, "template_id"], exc.message) from exc
            versions[body.template_id] = version
        row["template_version_id"] = versions[body.template_id].id
    else:
        assert body.subject is not None and body.html is not None  # noqa: S101 - schema
        error = _inline_error(settings.templates_dir, body.subject, body.html, body.text)
        if error is not None:
            raise _under(path, error)
        row.update(subject=body.subject, html=wrap_fragment(body.html), text_body=body.text)
    return row


async def sender_refusal(
    senders: SenderCheck, settings: Settings, req: Request
) -> SenderNotVerified | None:
    """The 422 of a message whose From domain SES knows without DKIM ``SUCCESS``
    (``mailer.ses.senders``; a kept answer, off the accept path once the domain was seen)."""
    path = [*req.path, "from_address"]
    try:
        mailbox = valid_mailbox(req.body.from_address, path)
    except Invalid:
        return None  # its own 422 comes with the row's checks
    try:
        await senders.check(mailbox, settings.regions, path)
    except SenderNotVerified as exc:
        return exc
    return None


async def accept(
    session: AsyncSession,
    settings: Settings,
    redis: ArqRedis,
    api_key_id: int | None,
    requests: Sequence[Request],
    senders: SenderCheck | None = None,
) -> list[MessageAccepted | MailerError]:
    """Accept messages; for each, the queued (or, for a known key, the earlier) message,
    or the error of that message alone. Keys are stored in this transaction. With
    ``senders``, a From domain SES knows as not verified is that message's 422."""
    answers: list[MessageAccepted | MailerError | None] = [None] * len(requests)
    rows: dict[int, dict[str, Any]] = {}
    versions: dict[int, TemplateVersion] = {}
    for i, req in enumerate(requests):
        if senders is not None and senders.enabled:
            answers[i] = await sender_refusal(senders, settings, req)
            if answers[i] is not None:
                continue
        try:
            rows[i] = await _row(session, settings, req, versions)
        except MailerError as exc:
            answers[i] = exc
    checks = {
        i: (_compiled(settings, row, versions), row["email"], row["data"])
        for i, row in rows.items()
    }
    for i, problem in (await render_problems(session, settings, checks)).items():
        answers[i] = Invalid.at([*requests[i].path, "data"], problem)
        rows.pop(i)
    keyed: dict[int, str] = {i: k for i in rows if (k := requests[i].key) is not None}
    hashes = {i: request_hash(requests[i].body) for i in keyed}

    def conflict(i: int) -> Conflict:
        return Conflict(
            "this Idempotency-Key was used with another body",
            [{"path": [*requests[i].path], "idempotency_key": keyed[i]}],
        )

    repeats: dict[int, int] = {}  # item -> the earlier item of this batch with its key
    first_with: dict[str, int] = {}
    for i, key in keyed.items():
        earlier = first_with.setdefault(key, i)
        if earlier != i:
            rows.pop(i)
            if hashes[earlier] != hashes[i]:
                answers[i] = conflict(i)
            else:
                repeats[i] = earlier
    order = list(rows)
    for i in order:
        if i in keyed:
            rows[i].update(idempotency_key=keyed[i], request_hash=hashes[i])
    inserted = dict(
        zip(
            order,
            await repository.insert_messages(session, [rows[i] for i in order], api_key_id),
            strict=True,
        )
    )
    # keys stored before (or by a transaction that committed while ours waited for it)
    known = [keyed[i] for i, (_, created) in inserted.items() if not created]
    # (no keys without a caller's key: known is empty then)
    stored = await repository.find_keys(session, api_key_id or 0, known) if known else {}
    ids = []
    for i, (message_id, created) in inserted.items():
        if created:
            ids.append(message_id)
            answers[i] = MessageAccepted(id=message_id, status="queued")
        elif (key_row := stored.get(keyed[i])) is None:
            # swept between the two statements: the caller may simply send it again
            answers[i] = Unavailable("this Idempotency-Key changed meanwhile; retry")
        elif key_row.request_hash != hashes[i]:
            answers[i] = conflict(i)
        else:
            answers[i] = MessageAccepted(id=key_row.message_id, status=key_row.status)
    for i, earlier_item in repeats.items():
        first = answers[earlier_item]
        answers[i] = conflict(i) if isinstance(first, Conflict) else first
    if ids:
        enqueue_after_commit(session, redis, ids)
    return [a for a in answers if a is not None]


def _compiled(
    settings: Settings, row: dict[str, Any], versions: dict[int, TemplateVersion]
) -> CompiledTemplate:
    """The compiled template a message row will be rendered with."""
    if row["template_version_id"] is None:
        return compiled_version(
            settings.templates_dir, None, row["subject"], row["html"], row["text_body"]
        )
    version = next(v for v in versions.values() if v.id == row["template_version_id"])
    return compiled_version(
        settings.templates_dir, version.id, version.subject, version.html, version.text
    )


async def render_problems(
    session: AsyncSession,
    settings: Settings,
    checks: dict[int, tuple[CompiledTemplate, str, dict[str, Any] | None]],
    campaign: dict[str, Any] | None = None,
) -> dict[int, str]:
    """Each message rendered as its send will render it (its data, the recipient's contact
    if there is one) before it is accepted: what would fail it later is its 422 now, naming
    the part and the variable. In a thread: the sandbox bounds a render's time, the event
    loop stays free."""
    if not checks:
        return {}
    found = await contacts.by_emails(session, sorted({email for _, email, _ in checks.values()}))
    unsubscribe_url = templates.preview_unsubscribe_url(settings)
    jobs = [
        (
            i,
            compiled,
            message_context(
                email, found.get(email), data, unsubscribe_url, settings.postal_address, campaign
            ),
        )
        for i, (compiled, email, data) in checks.items()
    ]

    def run() -> dict[int, str]:
        problems = {}
        for i, compiled, context in jobs:
            problem = render_problem(compiled, context)
            if problem is not None:
                problems[i] = f"{problem} (the variables a template can use: docs/templates.md)"
        return problems

    return await asyncio.to_thread(run)


def enqueue_after_commit(session: AsyncSession, redis: ArqRedis, ids: list[int]) -> None:
    queues.enqueue_after_commit(session, redis, TRANSACTIONAL_QUEUE, "send_messages", ids)


async def enqueue_send(redis: ArqRedis, ids: list[int], defer_until: Any = None) -> None:
    """One job on the transactional queue for ``ids`` (running it twice is harmless)."""
    await queues.enqueue(redis, TRANSACTIONAL_QUEUE, "send_messages", ids, defer_until=defer_until)


async def get(session: AsyncSession, message_id: int, campaign_id: int | None = None) -> MessageOut:
    """A transactional message, or with ``campaign_id`` one of that campaign's."""
    message = await repository.get(session, message_id, campaign_id)
    if message is None:
        where = f" in campaign {campaign_id}" if campaign_id is not None else ""
        raise NotFound(f"no message {message_id}{where}")
    events = await repository.events(session, message_id)
    return MessageOut(
        id=message.id,
        status=message.status,
        to=message.email,
        from_address=message.from_address,
        reply_to=message.reply_to,
        mail_class=message.mail_class,
        template_version_id=message.template_version_id,
        region=message.region,
        ses_message_id=message.ses_message_id,
        error=message.error,
        attempts=message.attempts,
        tags=message.tags or {},
        test_campaign_id=message.test_campaign_id,
        created_at=message.created_at,
        sent_at=message.sent_at,
        events=[_event(e) for e in events],
    )


def _event(e: Event) -> EventOut:
    return EventOut(type=e.type, subtype=e.subtype, occurred_at=e.occurred_at, data=e.data)


def _summary(m: Message) -> MessageSummary:
    return MessageSummary(
        id=m.id,
        status=m.status,
        to=m.email,
        mail_class=m.mail_class,
        region=m.region,
        ses_message_id=m.ses_message_id,
        error=m.error,
        created_at=m.created_at,
        sent_at=m.sent_at,
    )


async def page(
    session: AsyncSession, to: str | None, status: str | None, page: Page[int]
) -> MessagePage:
    """Newest first, a page at a time; ``next_cursor`` continues below the last one."""
    address = valid_address(to, ["query", "to"]) if to is not None else None
    rows, next_cursor = page.cut(
        await repository.page(session, address, status, page.last, page.fetch),
        key=lambda m: m.id,
    )
    return MessagePage(items=[_summary(m) for m in rows], next_cursor=next_cursor)


EVENTS_PER_MESSAGE = 50


async def of_contact(session: AsyncSession, email: str, page: Page[int]) -> ContactMessagePage:
    """The campaign and transactional messages sent to a contact, newest first, each with
    its first events; 404 when there is no such contact."""
    address = normalise(email)
    found = await contacts.get(session, address)
    if found is None:
        raise NotFound(f"no contact {address!r}")
    rows, next_cursor = page.cut(
        await repository.of_contact(session, found[0].id, address, page.last, page.fetch),
        key=lambda m: m.id,
    )
    events = await repository.events_of(session, [m.id for m in rows], EVENTS_PER_MESSAGE)
    items = [
        ContactMessage(
            **_summary(m).model_dump(),
            campaign_id=m.campaign_id,
            test_campaign_id=m.test_campaign_id,
            events=[_event(e) for e in events[m.id]],
        )
        for m in rows
    ]
    return ContactMessagePage(items=items, next_cursor=next_cursor)
