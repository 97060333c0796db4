"""The public side of subscriptions: a form's signup, the double opt-in mail and link,
and the preference centre. Every change goes through ``repository.set_topics`` (with its
consent record). Nothing here commits but the signups' groups (``Signups``)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from arq import ArqRedis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mailer.config import Settings
from mailer.contact.addresses import valid_address
from mailer.errors import MailerError, NotFound, TooManyRequests
from mailer.group_commit import GroupCommit
from mailer.message import repository as messages
from mailer.message import service as message_service
from mailer.models import Form, Topic
from mailer.subscription import mail, repository, throttle, tokens
from mailer.subscription.repository import Consent
from mailer.subscription.service import form_topics

HONEYPOT = "website"  # a field people never see and bots fill in
MAX_FORM_AGE = 86_400.0  # a form token older than a day is a replayed one


# -- the public signup -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Signup:
    """A submission that passed the door: its address valid and within the rate limits.
    ``genuine``: no honeypot, a genuine form token at a human speed (else it changes
    nothing, and is answered like the others)."""

    form_id: int
    email: str
    fields: dict[str, Any]
    genuine: bool
    ip: str | None
    user_agent: str | None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a signup is answered with: the form's message, or its redirect."""

    form_name: str
    message: str
    redirect_url: str | None


async def check(
    settings: Settings,
    redis: ArqRedis,
    form_id: int,
    fields: dict[str, Any],
    ip: str | None,
    user_agent: str | None,
) -> Signup:
    """A signup's checks before the database: the address (422), the rate limits (429,
    counted before anything is looked up, so the answer never depends on the address
    being known), the honeypot and the form token."""
    email = valid_address(str(fields.get("email") or ""), ["body", "email"])
    if await throttle.over_limit(
        redis,
        ip,
        email,
        settings.subscribe_max_per_ip_per_minute,
        settings.subscribe_max_per_address_per_hour,
    ):
        raise TooManyRequests("too many signups; try again later")
    shown_at = tokens.read_form_token(settings, str(fields.get("token") or ""), form_id)
    age = None if shown_at is None else time.time() - shown_at
    genuine = (
        not fields.get(HONEYPOT)
        and age is not None
        and settings.subscribe_min_fill_seconds <= age <= MAX_FORM_AGE
    )
    return Signup(form_id, email, fields, genuine, ip, user_agent)


class Signups:
    """Signups through forms, committed in groups (``mailer.group_commit``): a burst of
    submissions costs a few statements a group, not a dozen each. A new address and a
    known one get the same answer; topics with double opt-in wait, unconfirmed, for the
    link of one confirmation mail per address and form per hour."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
        redis: ArqRedis,
        *,
        group_size: int = 100,
        concurrency: int = 2,
    ) -> None:
        self.settings = settings
        self.redis = redis
        self._groups: GroupCommit[Signup, Outcome] = GroupCommit(
            sessionmaker, self._sign_up, group_size=group_size, concurrency=concurrency
        )

    async def submit(self, signup: Signup) -> Outcome:
        """The form's answer once the signup is committed; a 404 for an unknown form."""
        outcome = await self._groups.submit(signup)
        if isinstance(outcome, MailerError):
            raise outcome
        return outcome

    async def close(self) -> None:
        await self._groups.close()

    async def _sign_up(
        self, session: AsyncSession, signups: list[Signup]
    ) -> list[Outcome | MailerError]:
        forms = await repository.forms_by_id(session, sorted({s.form_id for s in signups}))
        offered = {f.id: await form_topics(session, f) for f in forms.values()}
        answers: list[Outcome | MailerError] = []
        todo: list[_Asked] = []
        for signup in signups:
            form = forms.get(signup.form_id)
            if form is None:
                answers.append(NotFound(f"no form {signup.form_id}"))
                continue
            answers.append(Outcome(form.name, form.message, form.redirect_url))
            asked = _asked(signup.fields.get("topics"), offered[form.id])
            if signup.genuine and asked:
                todo.append(_Asked(signup, form, asked))
        for round_ in _rounds(todo):
            await _apply(session, self.settings, self.redis, round_)
        return answers


@dataclass(frozen=True, slots=True)
class _Asked:
    signup: Signup
    form: Form
    topics: list[Topic]

    @property
    def to_confirm(self) -> list[Topic]:
        """The topics asked for that wait for the confirmation link (double opt-in)."""
        return [t for t in self.topics if t.double_opt_in]


def _asked(chosen: Any, topics: list[Topic]) -> list[Topic]:
    """The form's topics the reader ticked; all of them when the form has no choice."""
    if chosen is None or chosen == [] or len(topics) == 1:
        return topics
    picked = {str(c) for c in (chosen if isinstance(chosen, list) else [chosen])}
    return [t for t in topics if str(t.id) in picked]


def _rounds(todo: list[_Asked]) -> list[list[_Asked]]:
    """The signups in rounds where each address appears once, in the order they came."""
    rounds: list[tuple[set[str], list[_Asked]]] = []
    for asked in todo:
        for emails, items in rounds:
            if asked.signup.email not in emails:
                emails.add(asked.signup.email)
                items.append(asked)
                break
        else:
            rounds.append(({asked.signup.email}, [asked]))
    return [sorted(items, key=lambda a: a.signup.email) for _, items in rounds]


async def _apply(
    session: AsyncSession, settings: Settings, redis: ArqRedis, round_: list[_Asked]
) -> None:
    """One round's contacts, subscriptions with their consent records, and confirmations."""
    contacts = []
    for a in round_:
        attributes = {
            name: str(a.signup.fields[name])[:500]
            for name in a.form.fields
            if a.signup.fields.get(name) not in (None, "")
        }
        status = "unconfirmed" if a.to_confirm else "subscribed"
        contacts.append((a.signup.email, orjson.dumps(attributes).decode(), status))
    ids = await repository.signup_contacts(session, contacts)
    changes: list[tuple[int, int, str]] = []
    consents: list[Consent] = []
    for a in round_:
        consent = Consent(
            "form",
            a.form.id,
            a.form.version,
            a.form.consent_text,
            a.signup.ip,
            (a.signup.user_agent or "")[:500] or None,
        )
        for t in a.topics:
            changes.append(
                (ids[a.signup.email], t.id, "unconfirmed" if t.double_opt_in else "subscribed")
            )
            consents.append(consent)
    await repository.set_topics(session, changes, consents, keep_subscribed=True)
    confirm = [a for a in round_ if a.to_confirm]
    if confirm:
        await _send_confirmations(session, settings, redis, confirm, ids)


async def _send_confirmations(
    session: AsyncSession,
    settings: Settings,
    redis: ArqRedis,
    confirm: list[_Asked],
    ids: dict[str, int],
) -> None:
    """One double opt-in mail on the transactional lane per address and form, unless one
    went to it within the hour (a resubmission storm sends one)."""
    pairs = [(ids[a.signup.email], a.form.id) for a in confirm]
    await repository.lock_pairs(session, pairs)
    now = datetime.now(UTC)
    sent = await repository.recent_confirmations(session, pairs, now - timedelta(hours=1))
    due = [(pair, a) for pair, a in zip(pairs, confirm, strict=True) if pair not in sent]
    if not due:
        return
    made = await repository.insert_confirmations(
        session,
        [(c, f, [t.id for t in a.to_confirm]) for (c, f), a in due],
        now + timedelta(days=settings.confirmation_link_days),
    )
    rows = []
    for pair, a in due:
        url = f"{settings.public_url.rstrip('/')}/confirm/"
        url += tokens.confirm_token(settings, made[pair])
        topics = [t.name for t in a.to_confirm]
        rows.append(
            {
                "email": a.signup.email,
                "from_address": a.form.from_address,
                "mail_class": "transactional",
                "data": {"confirm_url": url, "form": a.form.name, "topics": topics},
                "template_version_id": None,
                "subject": a.form.confirm_subject or mail.SUBJECT,
                "html": a.form.confirm_html or mail.HTML,
                "text_body": None if a.form.confirm_html else mail.TEXT,
            }
        )
    message_ids = [m for m, _ in await messages.insert_messages(session, rows)]
    await repository.attach_messages(
        session, [(made[pair], m) for (pair, _), m in zip(due, message_ids, strict=True)]
    )
    message_service.enqueue_after_commit(session, redis, message_ids)


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
