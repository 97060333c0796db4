"""The send path's outcomes, group-committed: one statement records a batch of outcomes,
the campaign counters they move and the reputation rollups of the sends (so a count is
never off from the messages it counts)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from mailer import metrics
from mailer.engagement.repository import timeline_sends
from mailer.models.suppression import why_suppressed
from mailer.reputation.repository import configuration_sets_json
from mailer.webhook_out.outbox import with_send_path_events

# Applies a batch of outcomes and bumps the campaign counters in the same statement.
# outcome: sent | failed | suppressed | cancelled | retry (back to queued after a delay) |
# throttled (the same, without using up an attempt) | release (back to queued, no SES
# call was made: pause, shutdown). ``resent`` counts messages sent again after a
# lease lapsed while an SES call may have been under way.
_RECORD = text(  # the f-string composes the suppression rule
    f"""
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
                   WHEN r.outcome = 'suppressed' THEN COALESCE(r.error,
                       {why_suppressed("m.email")},
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
    ){timeline_sends()}
    SELECT (SELECT count(*) FROM moved) AS moved,
           (SELECT json_agg(k) FROM (SELECT mail_class, region, outcome, count(*) AS n
                                       FROM moved GROUP BY 1, 2, 3) k) AS kinds
    """  # noqa: S608 - constant fragments, no input
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
