"""The sending engine's SQL: claim, mark, record, release. Set-based, one statement each.

Message life in the engine: ``queued`` → ``claimed`` (leased, no SES call yet) →
``sending`` (an SES call may be under way) → a final state, or back to ``queued``.
Every statement checks the lease token, so a worker whose lease lapsed and was taken over
can no longer write.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from mailer.models.suppression import scopes_for, scopes_of


@dataclass(slots=True)
class Claimed:
    """A leased message. Campaign mail takes the rest from its campaign's plan; a
    transactional message carries its own class, sender, content and data."""

    id: int
    contact_id: int | None
    email: str
    attempts: int
    maybe_sent: bool
    mail_class: str = ""
    template_version_id: int | None = None
    from_address: str | None = None
    reply_to: str | None = None
    subject: str | None = None
    html: str | None = None
    text: str | None = None
    data: dict[str, Any] | None = None
    tags: dict[str, str] | None = None
    headers: dict[str, str] | None = None
    test_campaign_id: int | None = None
    # read with a transactional claim: whether the address is suppressed for its class,
    # the contact (None: no contact) and the (name, regions) of the campaign tested
    suppressed: bool | None = None  # None: not screened yet (campaign mail)
    contact: Any = None
    test_campaign: tuple[str, list[str]] | None = None
    variant: int | None = None  # the A/B variant of campaign mail (campaign.ab_tests)


# Claims the due, queued messages of one id range of a campaign that is sending.
# SKIP LOCKED lets two jobs for the same range (arq may run a job twice) split it
# instead of waiting on each other.
_CLAIM = text(
    """
    UPDATE messages m
       SET status = 'claimed', lease_token = :token,
           lease_until = now() + make_interval(secs => :lease)
     WHERE m.id IN (
             SELECT id FROM messages
              WHERE campaign_id = :campaign_id AND status = 'queued'
                AND id BETWEEN :lo AND :hi AND next_attempt_at <= now()
              ORDER BY id
              LIMIT :limit
              FOR UPDATE SKIP LOCKED)
       AND EXISTS (SELECT 1 FROM campaigns c WHERE c.id = :campaign_id AND c.status = 'sending')
    RETURNING m.id, m.contact_id, m.email, m.attempts, m.maybe_sent, m.variant
    """
)


async def claim(
    session: AsyncSession,
    campaign_id: int,
    lo: int,
    hi: int,
    token: str,
    lease: float,
    limit: int,
) -> list[Claimed]:
    rows = await session.execute(
        _CLAIM,
        {
            "campaign_id": campaign_id,
            "lo": lo,
            "hi": hi,
            "token": token,
            "lease": lease,
            "limit": limit,
        },
    )
    return [
        Claimed(r.id, r.contact_id, r.email, r.attempts, r.maybe_sent, variant=r.variant)
        for r in rows
    ]


# Claims due, queued transactional messages by id (test sends of campaigns included) and
# reads in the same statement all their send needs: content, contact, suppression. One
# round trip: a transactional message waits for each one, on a worker busy with campaigns.
# The address's suppression scopes come back; ``scopes_for`` (the one rule) judges them.
_CLAIM_MESSAGES = text(  # the f-string composes the suppression rule
    f"""
    WITH claimed AS (
        UPDATE messages m
           SET status = 'claimed', lease_token = :token,
               lease_until = now() + make_interval(secs => :lease)
         WHERE m.id IN (
                 SELECT id FROM messages
                  WHERE id = ANY(CAST(:ids AS bigint[])) AND campaign_id IS NULL
                    AND status = 'queued' AND next_attempt_at <= now()
                  ORDER BY id
                  FOR UPDATE SKIP LOCKED)
        RETURNING m.id, m.contact_id, m.email, m.attempts, m.maybe_sent, m.mail_class,
                  m.template_version_id, m.from_address, m.reply_to, m.subject, m.html,
                  m.text, m.data, m.tags, m.headers, m.test_campaign_id
    )
    SELECT c.id, c.contact_id, c.email, c.attempts, c.maybe_sent, c.mail_class,
           c.template_version_id, c.from_address, c.reply_to,
           CASE WHEN v.id IS NULL THEN c.subject ELSE v.subject END AS subject,
           CASE WHEN v.id IS NULL THEN c.html ELSE v.html END AS html,
           CASE WHEN v.id IS NULL THEN c.text ELSE v.text END AS text,
           c.data, c.tags, c.headers, c.test_campaign_id,
           t.name AS test_campaign_name, t.regions AS test_campaign_regions,
           k.attributes AS contact_attributes, k.tags AS contact_tags,
           k.status AS contact_status,
           {scopes_of("c.email")} AS scopes
      FROM claimed c
      LEFT JOIN template_versions v ON v.id = c.template_version_id
      LEFT JOIN campaigns t ON t.id = c.test_campaign_id
      LEFT JOIN contacts k ON k.id = c.contact_id
     ORDER BY c.id
    """  # noqa: S608 - constant fragments, no input
)


@dataclass(slots=True)
class ContactView:
    """What a message needs of its contact."""

    attributes: dict[str, Any]
    tags: list[str]
    status: str


_SCREENED = (
    "test_campaign_name",
    "test_campaign_regions",
    "contact_attributes",
    "contact_tags",
    "contact_status",
    "scopes",
)


async def claim_messages(
    session: AsyncSession | AsyncConnection, ids: list[int], token: str, lease: float
) -> list[Claimed]:
    rows = await session.execute(_CLAIM_MESSAGES, {"ids": ids, "token": token, "lease": lease})
    claimed = []
    for r in rows:
        values = r._asdict()
        extra = {k: values.pop(k) for k in _SCREENED}
        message = Claimed(**values)
        message.suppressed = bool(set(extra["scopes"]) & set(scopes_for(message.mail_class)))
        if extra["contact_status"] is not None:
            message.contact = ContactView(
                extra["contact_attributes"], list(extra["contact_tags"]), extra["contact_status"]
            )
        if message.test_campaign_id is not None and extra["test_campaign_name"] is not None:
            message.test_campaign = (
                extra["test_campaign_name"],
                list(extra["test_campaign_regions"] or []),
            )
        claimed.append(message)
    return claimed


_DUE_OF_MESSAGES = text(
    """
    SELECT min(next_attempt_at) AS due FROM messages
     WHERE id = ANY(CAST(:ids AS bigint[])) AND campaign_id IS NULL AND status = 'queued'
    """
)


async def next_due_messages(session: AsyncSession | AsyncConnection, ids: list[int]) -> Any:
    return (await session.execute(_DUE_OF_MESSAGES, {"ids": ids})).scalar_one()


# Only messages still under our lease may be sent: a lapsed lease may have been taken over.
# Every statement that may wait on message rows locks them in id order first (the
# MATERIALIZED ... ORDER BY id FOR UPDATE), so that concurrent renewals, marks, records
# and releases never deadlock: a deadlock aborts a record flush, and mail SES accepted
# would then be sent again once the lease lapses.
_MARK_SENDING = text(
    """
    WITH locked AS MATERIALIZED (
        SELECT id FROM messages
         WHERE id = ANY(:ids) AND lease_token = :token AND status = 'claimed'
         ORDER BY id FOR UPDATE
    )
    UPDATE messages m SET status = 'sending', attempts = m.attempts + 1
      FROM locked l
     WHERE m.id = l.id AND m.lease_token = :token AND m.status = 'claimed'
    RETURNING m.id
    """
)


async def mark_sending(
    session: AsyncSession | AsyncConnection, ids: list[int], token: str
) -> set[int]:
    rows = await session.execute(_MARK_SENDING, {"ids": ids, "token": token})
    return set(rows.scalars())


_RENEW = text(
    """
    WITH locked AS MATERIALIZED (
        SELECT id FROM messages
         WHERE status IN ('claimed', 'sending') AND lease_token = :token
         ORDER BY id FOR UPDATE
    )
    UPDATE messages m SET lease_until = now() + make_interval(secs => :lease)
      FROM locked l
     WHERE m.id = l.id AND m.status IN ('claimed', 'sending') AND m.lease_token = :token
    """
)


async def renew_lease(session: AsyncSession, token: str, lease: float) -> None:
    await session.execute(_RENEW, {"token": token, "lease": lease})


_RELEASE_EXPIRED = text(
    """
    WITH locked AS MATERIALIZED (
        SELECT id FROM messages
         WHERE status IN ('claimed', 'sending') AND lease_until < now()
         ORDER BY id FOR UPDATE
    )
    UPDATE messages m
       SET status = 'queued', maybe_sent = m.maybe_sent OR m.status = 'sending',
           attempts = m.attempts + CASE WHEN m.status = 'claimed' THEN 1 ELSE 0 END,
           lease_token = NULL, lease_until = NULL, next_attempt_at = now()
      FROM locked l
     WHERE m.id = l.id AND m.status IN ('claimed', 'sending') AND m.lease_until < now()
    RETURNING m.campaign_id
    """
)


async def release_expired(session: AsyncSession) -> set[int | None]:
    rows = await session.execute(_RELEASE_EXPIRED)
    return {r.campaign_id for r in rows}


_CONTACTS = text(
    "SELECT id, attributes, tags, status FROM contacts WHERE id = ANY(CAST(:ids AS bigint[]))"
)


async def contacts(session: AsyncSession, ids: list[int]) -> dict[int, Any]:
    rows = await session.execute(_CONTACTS, {"ids": ids})
    return {r.id: r for r in rows}


_DUE_IN_RANGE = text(
    """
    SELECT min(next_attempt_at) AS due FROM messages
     WHERE campaign_id = :campaign_id AND status = 'queued' AND id BETWEEN :lo AND :hi
       AND next_attempt_at < 'infinity'  -- held for an A/B test's winner (campaign.ab_tests)
    """
)


async def next_due(session: AsyncSession, campaign_id: int, lo: int, hi: int) -> Any:
    return (
        await session.execute(_DUE_IN_RANGE, {"campaign_id": campaign_id, "lo": lo, "hi": hi})
    ).scalar_one()


_PLAN = text(
    """
    SELECT c.id, c.name, c.mail_class, coalesce(cv.from_address, c.from_address) AS from_address,
           c.reply_to, c.regions, c.utm,
           v.id AS version_id, coalesce(cv.subject, v.subject) AS subject, v.html, v.text
      FROM campaigns c
      LEFT JOIN campaign_variants cv ON cv.campaign_id = c.id AND cv.variant = :variant
      JOIN template_versions v ON v.id = coalesce(cv.template_version_id, c.template_version_id)
     WHERE c.id = :id
    """
)


async def campaign_plan(session: AsyncSession, campaign_id: int, variant: int | None) -> Any:
    """What sending a campaign's messages needs: its sender, class, regions and template
    (those of one of its A/B variants, campaign.ab_tests, where the variant says otherwise)."""
    return (await session.execute(_PLAN, {"id": campaign_id, "variant": variant})).one()


async def campaign_statuses(conn: AsyncConnection, ids: list[int]) -> list[Any]:
    """``(id, status)`` of these campaigns (the send path's pause poll)."""
    rows = await conn.execute(
        text("SELECT id, status FROM campaigns WHERE id = ANY(CAST(:ids AS bigint[]))"),
        {"ids": ids},
    )
    return list(rows)
