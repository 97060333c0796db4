"""Topics, subscriptions and consent records; forms, signups and double opt-in.

Every change of a subscription goes through ``repository.set_topics``, which writes its
consent record in the same statement. Services never commit.
"""

from __future__ import annotations

import html
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from arq import ArqRedis
from sqlalchemy.ext.asyncio import AsyncSession

from mailer.config import Settings
from mailer.contact.addresses import normalise, valid_address, valid_mailbox
from mailer.errors import Conflict, Invalid, NotFound, TooManyRequests
from mailer.message import repository as messages
from mailer.message import service as message_service
from mailer.models import Form, Topic
from mailer.pagination import Page
from mailer.subscription import mail, repository, throttle, tokens
from mailer.subscription.repository import Consent
from mailer.subscription.schemas import (
    ConsentPage,
    ConsentRecord,
    ContactTopicOut,
    ContactTopicsIn,
    ContactTopicsOut,
    FormIn,
    FormOut,
    FormPage,
    FormPatch,
    Submitted,
    TopicIn,
    TopicOut,
    TopicPage,
    TopicPatch,
)

HONEYPOT = "website"  # a field people never see and bots fill in
MAX_FORM_AGE = 86_400.0  # a form token older than a day is a replayed one


# -- topics ----------------------------------------------------------------------------------


def _topic_out(t: Topic) -> TopicOut:
    return TopicOut.model_validate(t, from_attributes=True)


async def create_topic(session: AsyncSession, body: TopicIn) -> TopicOut:
    if await repository.topic_name_taken(session, body.name):
        raise Conflict(f"a topic is named {body.name!r} already")
    return _topic_out(await repository.insert_topic(session, **body.model_dump()))


async def _topic(session: AsyncSession, topic_id: int) -> Topic:
    topic = await repository.get_topic(session, topic_id)
    if topic is None:
        raise NotFound(f"no topic {topic_id}")
    return topic


async def get_topic(session: AsyncSession, topic_id: int) -> TopicOut:
    return _topic_out(await _topic(session, topic_id))


async def update_topic(session: AsyncSession, topic_id: int, body: TopicPatch) -> TopicOut:
    topic = await _topic(session, topic_id)
    if body.name is not None and await repository.topic_name_taken(session, body.name, topic_id):
        raise Conflict(f"a topic is named {body.name!r} already")
    for name, value in body.model_dump(exclude_unset=True).items():
        if value is not None:
            setattr(topic, name, value)
    topic.updated_at = datetime.now(UTC)
    await session.flush()
    return _topic_out(topic)


async def page_topics(session: AsyncSession, page: Page[int]) -> TopicPage:
    rows, next_cursor = page.cut(
        await repository.topics_page(session, page.last or 0, page.fetch), key=lambda t: t.id
    )
    return TopicPage(items=[_topic_out(t) for t in rows], next_cursor=next_cursor)


async def _known_topics(session: AsyncSession, ids: list[int], path: list[str | int]) -> None:
    found = await repository.topics_by_id(session, ids)
    missing = sorted(set(ids) - set(found))
    if missing:
        raise Invalid.at(path, f"no topics {missing}")


# -- a contact's subscriptions and consent records -------------------------------------------


async def _contact(session: AsyncSession, email: str) -> int:
    found = await repository.contact_id(session, normalise(email))
    if found is None:
        raise NotFound(f"no contact {email}")
    return found[0]


async def contact_topics(session: AsyncSession, email: str) -> ContactTopicsOut:
    contact_id = await _contact(session, email)
    rows = await repository.contact_topics(session, contact_id)
    return ContactTopicsOut(
        email=normalise(email),
        topics=[
            ContactTopicOut(
                topic_id=r.topic_id, name=r.name, status=r.status, updated_at=r.updated_at
            )
            for r in rows
        ],
    )


async def put_contact_topics(
    session: AsyncSession, email: str, body: ContactTopicsIn, source: str = "api"
) -> ContactTopicsOut:
    """Subscribe or unsubscribe a contact (source ``api``); the others stay as they are."""
    contact_id = await _contact(session, email)
    ids = [c.topic_id for c in body.topics]
    await _known_topics(session, ids, ["body", "topics"])
    await repository.set_topics(
        session, [(contact_id, c.topic_id, c.status) for c in body.topics], Consent(source)
    )
    return await contact_topics(session, email)


async def consent_records(session: AsyncSession, email: str, page: Page[int]) -> ConsentPage:
    """Every change of the contact's subscriptions, oldest first (the export)."""
    contact_id = await _contact(session, email)
    rows, next_cursor = page.cut(
        await repository.consent_records(session, contact_id, page.last or 0, page.fetch),
        key=lambda r: int(r.id),
    )
    return ConsentPage(
        items=[ConsentRecord.model_validate(r, from_attributes=True) for r in rows],
        next_cursor=next_cursor,
    )


# -- forms -----------------------------------------------------------------------------------


def embed_html(settings: Settings, form: Form) -> str:
    """A snippet for another site: the hosted form in a frame (its token and honeypot come
    with it, so the abuse controls hold there too)."""
    url = f"{settings.public_url.rstrip('/')}/subscribe/{form.id}"
    return (
        f'<iframe src="{html.escape(url)}" title="{html.escape(form.name)}"'
        ' style="border:0;width:100%;min-height:360px" loading="lazy"></iframe>'
    )


def form_out(settings: Settings, form: Form) -> FormOut:
    return FormOut(
        id=form.id,
        name=form.name,
        topic_ids=list(form.topic_ids),
        fields=list(form.fields),
        consent_text=form.consent_text,
        redirect_url=form.redirect_url,
        message=form.message,
        from_address=form.from_address,
        confirm_subject=form.confirm_subject,
        confirm_html=form.confirm_html,
        version=form.version,
        url=f"{settings.public_url.rstrip('/')}/subscribe/{form.id}",
        embed_html=embed_html(settings, form),
        created_at=form.created_at,
    )


async def create_form(session: AsyncSession, settings: Settings, body: FormIn) -> FormOut:
    await _known_topics(session, body.topic_ids, ["body", "topic_ids"])
    values = body.model_dump()
    values["topic_ids"] = list(dict.fromkeys(body.topic_ids))
    values["from_address"] = valid_mailbox(body.from_address, ["body", "from_address"])
    return form_out(settings, await repository.insert_form(session, **values))


async def get_form(session: AsyncSession, form_id: int, lock: bool = False) -> Form:
    form = await repository.get_form(session, form_id, lock)
    if form is None:
        raise NotFound(f"no form {form_id}")
    return form


async def update_form(
    session: AsyncSession, settings: Settings, form_id: int, body: FormPatch
) -> FormOut:
    """Change a form; its version goes up, so consent records name what each reader saw."""
    form = await get_form(session, form_id, lock=True)
    given = body.model_dump(exclude_unset=True)
    if body.topic_ids is not None:
        await _known_topics(session, body.topic_ids, ["body", "topic_ids"])
        given["topic_ids"] = list(dict.fromkeys(body.topic_ids))
    if body.from_address is not None:
        given["from_address"] = valid_mailbox(body.from_address, ["body", "from_address"])
    nullable = {"redirect_url", "confirm_subject", "confirm_html"}
    for name, value in given.items():
        if value is not None or name in nullable:
            setattr(form, name, value)
    form.version += 1
    form.updated_at = datetime.now(UTC)
    await session.flush()
    return form_out(settings, form)


async def page_forms(session: AsyncSession, settings: Settings, page: Page[int]) -> FormPage:
    rows, next_cursor = page.cut(
        await repository.forms_page(session, page.last or 0, page.fetch), key=lambda f: f.id
    )
    return FormPage(items=[form_out(settings, f) for f in rows], next_cursor=next_cursor)


async def form_topics(session: AsyncSession, form: Form) -> list[Topic]:
    found = await repository.topics_by_id(session, list(form.topic_ids))
    return [found[i] for i in form.topic_ids if i in found]


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
