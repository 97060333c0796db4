"""Topics, subscriptions and consent records; forms, signups and double opt-in.

Every change of a subscription goes through ``repository.set_topics``, which writes its
consent record in the same statement. Services never commit.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from mailer.config import Settings
from mailer.contact.addresses import normalise, valid_mailbox
from mailer.errors import Conflict, Invalid, NotFound
from mailer.models import Form, Topic
from mailer.models.subscription import TOPIC_STATUSES
from mailer.pagination import Page
from mailer.subscription import repository
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
    TopicIn,
    TopicOut,
    TopicPage,
    TopicPatch,
)

# -- topics ----------------------------------------------------------------------------------

Counts = dict[str, int]


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


async def subscriber_counts(session: AsyncSession, topic_ids: list[int]) -> dict[int, Counts]:
    """Each topic's subscriptions by status (``subscribed``, ``unconfirmed``,
    ``unsubscribed``); a topic without any has zeros."""
    counts: dict[int, Counts] = {t: dict.fromkeys(TOPIC_STATUSES, 0) for t in topic_ids}
    for row in await repository.subscriber_counts(session, topic_ids):
        counts[int(row.topic_id)][str(row.status)] = int(row.n)
    return counts


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
    wanted = {c.topic_id: c.status for c in body.topics}  # a topic named twice: the last
    await _known_topics(session, list(wanted), ["body", "topics"])
    await repository.set_topics(
        session, [(contact_id, t, s) for t, s in wanted.items()], Consent(source)
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


async def forget_old_origins(session: AsyncSession, redis: Redis, settings: Settings) -> int:
    """At most once an hour across all workers: clear the IP and user agent of consent
    records older than ``consent_retention_days`` (the record itself stays)."""
    if not await redis.set("mailer:consent-retention", 1, ex=3600, nx=True):
        return 0
    return await repository.forget_origins(session, settings.consent_retention_days)
