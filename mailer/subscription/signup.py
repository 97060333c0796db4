"""The public side of subscriptions: a form's signup, the double opt-in mail and link,
and the preference centre. Every change goes through ``repository.set_topics`` (with its
consent record); nothing here commits."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from arq import ArqRedis
from sqlalchemy.ext.asyncio import AsyncSession

from mailer.config import Settings
from mailer.contact.addresses import valid_address
from mailer.errors import NotFound, TooManyRequests
from mailer.message import repository as messages
from mailer.message import service as message_service
from mailer.models import Form, Topic
from mailer.subscription import mail, repository, throttle, tokens
from mailer.subscription.repository import Consent
from mailer.subscription.schemas import Submitted
from mailer.subscription.service import form_topics, get_form

HONEYPOT = "website"  # a field people never see and bots fill in
MAX_FORM_AGE = 86_400.0  # a form token older than a day is a replayed one


# -- the public signup -----------------------------------------------------------------------


async def submit(
    session: AsyncSession,
    settings: Settings,
    redis: ArqRedis,
    form_id: int,
    fields: dict[str, Any],
    ip: str | None,
    user_agent: str | None,
) -> Submitted:
    """A signup through a form. Bots (the honeypot filled in, no genuine form token, a form
    filled in faster than a person can) get the same answer as people and change nothing;
    a new address and a known one get the same answer too. Topics with double opt-in wait,
    unconfirmed, for the link of one confirmation mail per address and form per hour."""
    form = await get_form(session, form_id)
    done = Submitted(message=form.message)
    email = valid_address(str(fields.get("email") or ""), ["body", "email"])
    if await throttle.over_limit(
        redis,
        ip,
        email,
        settings.subscribe_max_per_ip_per_minute,
        settings.subscribe_max_per_address_per_hour,
    ):
        raise TooManyRequests("too many signups; try again later")
    if fields.get(HONEYPOT):
        return done
    shown_at = tokens.read_form_token(settings, str(fields.get("token") or ""), form.id)
    age = None if shown_at is None else time.time() - shown_at
    if age is None or age < settings.subscribe_min_fill_seconds or age > MAX_FORM_AGE:
        return done
    topics = await form_topics(session, form)
    asked = _asked(fields.get("topics"), topics)
    if not asked:
        return done
    attributes = {
        name: str(fields[name])[:500] for name in form.fields if fields.get(name) not in (None, "")
    }
    confirm_first = [t for t in asked if t.double_opt_in]
    contact_id, _, _ = await repository.signup_contact(
        session,
        email,
        orjson.dumps(attributes).decode(),
        "unconfirmed" if confirm_first else "subscribed",
    )
    consent = Consent(
        "form", form.id, form.version, form.consent_text, ip, (user_agent or "")[:500] or None
    )
    changes = [
        (contact_id, t.id, "unconfirmed" if t.double_opt_in else "subscribed") for t in asked
    ]
    await repository.set_topics(session, changes, consent, keep_subscribed=True)
    if confirm_first:
        await _send_confirmation(session, settings, redis, form, contact_id, email, confirm_first)
    return done


def _asked(chosen: Any, topics: list[Topic]) -> list[Topic]:
    """The form's topics the reader ticked; all of them when the form has no choice."""
    if chosen is None or chosen == [] or len(topics) == 1:
        return topics
    picked = {str(c) for c in (chosen if isinstance(chosen, list) else [chosen])}
    return [t for t in topics if str(t.id) in picked]


async def _send_confirmation(
    session: AsyncSession,
    settings: Settings,
    redis: ArqRedis,
    form: Form,
    contact_id: int,
    email: str,
    topics: list[Topic],
) -> None:
    """One double opt-in mail on the transactional lane, unless one went to this address
    for this form within the hour (a resubmission storm sends one)."""
    await repository.lock_pair(session, contact_id, form.id)
    now = datetime.now(UTC)
    if await repository.recent_confirmation(session, contact_id, form.id, now - timedelta(hours=1)):
        return
    confirmation = await repository.insert_confirmation(
        session,
        contact_id=contact_id,
        form_id=form.id,
        topic_ids=[t.id for t in topics],
        expires_at=now + timedelta(days=settings.confirmation_link_days),
    )
    token = tokens.confirm_token(settings, confirmation.id)
    url = f"{settings.public_url.rstrip('/')}/confirm/{token}"
    row = {
        "email": email,
        "from_address": form.from_address,
        "mail_class": "transactional",
        "data": {"confirm_url": url, "form": form.name, "topics": [t.name for t in topics]},
        "template_version_id": None,
        "subject": form.confirm_subject or mail.SUBJECT,
        "html": form.confirm_html or mail.HTML,
        "text_body": None if form.confirm_html else mail.TEXT,
    }
    [(message_id, _)] = await messages.insert_messages(session, [row])
    confirmation.message_id = message_id
    message_service.enqueue_after_commit(session, redis, [message_id])


async def confirm(
    session: AsyncSession, settings: Settings, token: str, ip: str | None, user_agent: str | None
) -> int:
    """Confirm the topics a link was sent for, once; the contact id (for the preference
    centre link). An unknown, used or expired link is a 404 and changes nothing."""
    confirmation_id = tokens.read_confirm_token(settings, token)
    row = None
    if confirmation_id is not None:
        row = await repository.use_confirmation(session, confirmation_id)
    if row is None:
        raise NotFound("this confirmation link is unknown, used or expired")
    form = await repository.get_form(session, row.form_id)
    consent = Consent(
        "confirmation_link",
        row.form_id,
        form.version if form else None,
        form.consent_text if form else None,
        ip,
        (user_agent or "")[:500] or None,
    )
    await repository.set_topics(
        session, [(row.contact_id, t, "subscribed") for t in row.topic_ids], consent
    )
    await repository.confirm_contact(session, row.contact_id)
    return int(row.contact_id)


def check_confirm_token(settings: Settings, token: str) -> None:
    if tokens.read_confirm_token(settings, token) is None:
        raise NotFound("this confirmation link is unknown, used or expired")


# -- the preference centre -------------------------------------------------------------------


async def reader(session: AsyncSession, settings: Settings, token: str) -> int:
    """The contact a preference centre token stands for; anything else is a 404."""
    found = tokens.read_preferences_token(settings, token)
    contact_id = None
    if found is not None:
        kind, number = found
        if kind == "message":
            contact_id = await repository.contact_of_message(session, number)
        elif await repository.contact_email(session, number) is not None:
            contact_id = number
    if contact_id is None:
        raise NotFound("unknown preferences link")
    return contact_id


async def preferences(session: AsyncSession, contact_id: int) -> list[dict[str, Any]]:
    """The topics a reader sees: theirs (whatever their status) and the public ones."""
    mine = {r.topic_id: r for r in await repository.contact_topics(session, contact_id)}
    shown = [
        {"id": r.topic_id, "name": r.name, "description": r.description, "status": r.status}
        for r in mine.values()
    ]
    for t in await repository.public_topics(session):
        if t.id not in mine:
            shown.append(
                {"id": t.id, "name": t.name, "description": t.description, "status": "unsubscribed"}
            )
    return sorted(shown, key=lambda t: t["id"])


async def choose(
    session: AsyncSession,
    contact_id: int,
    chosen: set[int],
    leave_all: bool,
    ip: str | None,
    user_agent: str | None,
) -> None:
    """Apply the reader's choice: each topic shown becomes subscribed if ticked, else
    unsubscribed; "leave everything" unsubscribes from all marketing mail."""
    shown = await preferences(session, contact_id)
    changes = [
        (
            contact_id,
            t["id"],
            "subscribed" if t["id"] in chosen and not leave_all else "unsubscribed",
        )
        for t in shown
    ]
    # untouched topics stay as they are (an unconfirmed one the reader did not tick stays so)
    changes = [
        c
        for c, t in zip(changes, shown, strict=True)
        if not (t["status"] == "unconfirmed" and c[2] == "unsubscribed" and not leave_all)
    ]
    consent = Consent("preference_centre", ip=ip, user_agent=(user_agent or "")[:500] or None)
    await repository.set_topics(session, changes, consent)
    if leave_all:
        await repository.leave_everything(session, contact_id)
    elif any(c[2] == "subscribed" for c in changes):
        await repository.confirm_contact(session, contact_id)
