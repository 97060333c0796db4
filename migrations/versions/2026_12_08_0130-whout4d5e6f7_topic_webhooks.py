"""Outgoing webhooks for topic subscriptions: ``contact.subscribed`` and, with the topic,
``contact.unsubscribed``, written by a statement trigger on ``topic_changes`` (the consent
records: one row per change, whichever path made it: the API, an import, a form, a
confirmation link, the preference centre, an unsubscribe link, a complaint) in the
transaction of the change. An unconfirmed subscription reports nothing until confirmed.

Revision ID: whout4d5e6f7
Revises: whout3c4d5e6
Create Date: 2026-12-08 01:30:00+00:00
"""

# ruff: noqa: S608 - SQL composed of this file's constants
from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "whout4d5e6f7"
down_revision: str | Sequence[str] | None = "whout3c4d5e6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# the same as mailer.webhook_out.outbox.iso / matches (copied: a migration stays as written)
ISO = """to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""
KIND = "CASE n.status WHEN 'subscribed' THEN 'contact.subscribed' ELSE 'contact.unsubscribed' END"
MATCHES = f"""e.enabled
       AND (e.event_types IS NULL OR {KIND} = ANY(e.event_types)
            OR 'contact.*' = ANY(e.event_types))
       AND e.mail_classes IS NULL AND e.campaign_ids IS NULL"""

FUNCTION = f"""
CREATE FUNCTION webhook_out_topic_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_deliveries (endpoint_id, type, payload)
    SELECT e.id, {KIND}, jsonb_build_object(
               'type', {KIND}, 'timestamp', {ISO},
               'data', jsonb_build_object(
                   'contact_id', n.contact_id, 'email', c.email, 'topic_id', n.topic_id,
                   'topic', t.name, 'source', n.source))
      FROM new_rows n
      JOIN contacts c ON c.id = n.contact_id
      JOIN topics t ON t.id = n.topic_id
      JOIN webhook_endpoints e ON {MATCHES}
     WHERE n.status IN ('subscribed', 'unsubscribed')
     ORDER BY e.id, n.id;
    RETURN NULL;
END $$"""

TRIGGER = """
CREATE TRIGGER webhook_out_topic_changes AFTER INSERT ON topic_changes
   REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
   EXECUTE FUNCTION webhook_out_topic_changes()"""


def upgrade() -> None:
    op.execute(FUNCTION)
    op.execute(TRIGGER)


def downgrade() -> None:
    op.execute("DROP TRIGGER webhook_out_topic_changes ON topic_changes")
    op.execute("DROP FUNCTION webhook_out_topic_changes()")
