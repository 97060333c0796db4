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

from mailer.models.suppression import scopes_for
from mailer.ops import metrics
from mailer.reputation.repository import configuration_sets_json
from mailer.webhook_out.outbox import with_send_path_events


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
    RETURNING m.id, m.contact_id, m.email, m.attempts, m.maybe_sent
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
    return [Claimed(r.id, r.contact_id, r.email, r.attempts, r.maybe_sent) for r in rows]


# Claims due, queued transactional messages by id (test sends of campaigns included) and
# reads in the same statement all their send needs: content, contact, suppression. One
# round trip: a transactional message waits for each one, on a worker busy with campaigns.
# The address's suppression scopes come back; ``scopes_for`` (the one rule) judges them.
_CLAIM_MESSAGES = text(
    """
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
           ARRAY(SELECT s.scope FROM suppressions s WHERE s.email = c.email) AS scopes
      FROM claimed c
      LEFT JOIN template_versions v ON v.id = c.template_version_id
      LEFT JOIN campaigns t ON t.id = c.test_campaign_id
      LEFT JOIN contacts k ON k.id = c.contact_id
     ORDER BY c.id
    """
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
    return {r.id for r in rows}


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


# Applies a batch of outcomes and bumps the campaign counters in the same statement.
# outcome: sent | failed | suppressed | cancelled | retry (back to queued after a delay) |
# throttled (the same, without using up an attempt) | release (back to queued, no SES
# call was made: pause, shutdown). ``resent`` counts messages sent again after a
# lease lapsed while an SES call may have been under way.
_RECORD = text(
    """
    WITH r AS (
        SELECT * FROM unnest(
            CAST(:ids AS bigint[]), CAST(:outcomes AS text[]), CAST(:sids AS text[]),
            CAST(:regions AS text[]), CAST(:errors AS text[]), CAST(:delays AS float8[]))
          AS r(id, outcome, sid, region, error, delay)
    ), locked AS MATERIALIZED (
        SELECT id FROM messages
         WHERE id = ANY(CAST(:ids AS bigint[])) AND lease_token = :token
         ORDER BY id FOR UPDATE
    ), moved AS (
        UPDATE messages m
           SET status = CASE
                   WHEN r.outcome NOT IN ('retry', 'release', 'throttled') THEN r.outcome
                   -- cancelled while its call was under way: it must not wait in the
                   -- queue of a campaign that will never send it
                   WHEN EXISTS (SELECT 1 FROM campaigns c
                                 WHERE c.id = m.campaign_id AND c.status = 'cancelled')
                   THEN 'cancelled'
                   ELSE 'queued' END,
               -- throttling is retried without limit: it does not use up an attempt;
               -- nor does a release after marking (no SES call was made)
               attempts = m.attempts - CASE
                   WHEN r.outcome = 'throttled' THEN 1
                   WHEN r.outcome = 'release' AND m.status = 'sending' THEN 1
                   ELSE 0 END,
               ses_message_id = COALESCE(r.sid, m.ses_message_id),
               region = COALESCE(r.region, m.region),
               error = CASE
                   WHEN r.outcome = 'release' THEN m.error
                   -- why it was not sent, as the suppression list says it now
                   WHEN r.outcome = 'suppressed' THEN COALESCE(r.error, (
                       SELECT 'suppressed: ' || s.reason || ' (scope ' || s.scope || ', since '
                              || to_char(s.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') || ')'
                         FROM suppressions s WHERE s.email = m.email),
                       'suppressed: the contact is unsubscribed')
                   ELSE r.error END,
               sent_at = CASE WHEN r.outcome = 'sent' THEN now() ELSE m.sent_at END,
               next_attempt_at = now() + make_interval(secs => COALESCE(r.delay, 0)),
               lease_token = NULL, lease_until = NULL
          FROM r JOIN locked l ON l.id = r.id
         WHERE m.id = r.id AND m.lease_token = :token
        RETURNING m.campaign_id, r.outcome, m.maybe_sent, m.status AS now_status,
                  m.mail_class, m.region, m.email, m.id, m.ses_message_id, m.tags, m.error
    ), counts AS (
        SELECT campaign_id,
               count(*) FILTER (WHERE outcome = 'sent') AS sent,
               count(*) FILTER (WHERE outcome = 'failed') AS failed,
               count(*) FILTER (WHERE outcome = 'suppressed') AS suppressed,
               count(*) FILTER (WHERE outcome = 'sent' AND maybe_sent) AS resent,
               -- back from a call under way when the campaign was cancelled
               count(*) FILTER (WHERE now_status = 'cancelled') AS cancelled,
               count(*) FILTER (
                   WHERE now_status IN ('sent', 'failed', 'suppressed', 'cancelled')) AS done
          FROM moved WHERE campaign_id IS NOT NULL GROUP BY campaign_id
    ), bumped AS (
        UPDATE campaign_stats s
           SET sent = s.sent + c.sent, failed = s.failed + c.failed,
               suppressed = s.suppressed + c.suppressed, resent = s.resent + c.resent,
               cancelled = s.cancelled + c.cancelled,
               queued = GREATEST(s.queued - c.done, 0)
          FROM counts c WHERE s.campaign_id = c.campaign_id
        RETURNING s.campaign_id
    ), rolled AS (
        -- reputation rollups (mailer/reputation): sends per minute, class, region,
        -- configuration set and campaign, simulator traffic left out; after the campaign
        -- counters and in key order, so concurrent writers lock rows in one order
        INSERT INTO reputation_minutes AS t
               (minute, mail_class, region, configuration_set, campaign_id, sent)
        SELECT date_trunc('minute', now()), mail_class, COALESCE(region, ''),
               COALESCE(CAST(:config_sets AS jsonb) ->> mail_class, ''),
               COALESCE(campaign_id, 0), count(*)
          FROM moved
         WHERE outcome = 'sent' AND email NOT LIKE '%@simulator.amazonses.com'
         GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
        ON CONFLICT (minute, mail_class, region, configuration_set, campaign_id)
        DO UPDATE SET sent = t.sent + EXCLUDED.sent
    )
    SELECT (SELECT count(*) FROM moved) AS moved,
           (SELECT json_agg(k) FROM (SELECT mail_class, region, outcome, count(*) AS n
                                       FROM moved GROUP BY 1, 2, 3) k) AS kinds
    """
)
# outgoing webhooks (mailer.webhook_out): message.sent / message.failed, with the outcome
_RECORD = with_send_path_events(_RECORD, "moved")


@dataclass(slots=True)
class Outcome:
    id: int
    outcome: str
    sid: str | None = None
    region: str | None = None
    error: str | None = None
    delay: float | None = None


async def record(
    session: AsyncSession | AsyncConnection, outcomes: list[Outcome], token: str
) -> int:
    params: dict[str, Any] = {
        "ids": [o.id for o in outcomes],
        "outcomes": [o.outcome for o in outcomes],
        "sids": [o.sid for o in outcomes],
        "regions": [o.region for o in outcomes],
        "errors": [o.error for o in outcomes],
        "delays": [o.delay for o in outcomes],
        "token": token,
        "config_sets": configuration_sets_json(),
    }
    row = (await session.execute(_RECORD, params)).one()
    metrics.count_sends(row.kinds)
    return int(row.moved)


# Lapsed leases go back to the queue; a lapsed "sending" may have reached SES. A lapsed
# "claimed" uses up an attempt too ("sending" did at its mark): a message whose render or
# build takes its worker down is not claimed without end; once its attempts are used up,
# the next claim fails it (``Sender._send_one``).
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


_SUPPRESSED = text(
    """
    SELECT email FROM suppressions
     WHERE email = ANY(CAST(:emails AS text[])) AND scope = ANY(CAST(:scopes AS text[]))
    """
)


async def suppressed(session: AsyncSession, emails: list[str], mail_class: str) -> set[str]:
    scopes = scopes_for(mail_class)
    rows = await session.execute(_SUPPRESSED, {"emails": emails, "scopes": scopes})
    return {r.email for r in rows}


_DUE_IN_RANGE = text(
    """
    SELECT min(next_attempt_at) AS due FROM messages
     WHERE campaign_id = :campaign_id AND status = 'queued' AND id BETWEEN :lo AND :hi
    """
)


async def next_due(session: AsyncSession, campaign_id: int, lo: int, hi: int) -> Any:
    return (
        await session.execute(_DUE_IN_RANGE, {"campaign_id": campaign_id, "lo": lo, "hi": hi})
    ).scalar_one()
