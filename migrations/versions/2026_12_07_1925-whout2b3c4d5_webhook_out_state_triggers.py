"""Outgoing webhooks for state changes: campaign.*, contact.unsubscribed, suppression.*,
import.completed, written by triggers in the transaction of the change.

Triggers, not calls in each service: a campaign's status is changed by the API, the
scheduler, the send path's completion, the reputation guard's auto-pause and the account
checks; suppressions by the API, imports and the feedback loop. A trigger reports every
one of them, now and later, in the same transaction (a rolled-back change reports
nothing). None of these tables is on a per-message hot path; the set-based ones
(suppressions, contact status changes) use statement triggers with transition tables,
one ``INSERT … SELECT`` per statement, which writes nothing when no endpoint listens.

Revision ID: whout2b3c4d5
Revises: whout1a2b3c4
Create Date: 2026-12-07 18:45:00+00:00
"""

# ruff: noqa: S608 - SQL composed of this file's constants
from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "whout2b3c4d5"
down_revision: str | Sequence[str] | None = "whout1a2b3c4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# the same as mailer.webhook_out.outbox.iso / matches (copied: a migration stays as written)
ISO = """to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""


def _matches(kind: str, mail_class: str, campaign: str) -> str:
    return f"""e.enabled
       AND (e.event_types IS NULL OR {kind} = ANY(e.event_types)
            OR split_part({kind}, '.', 1) || '.*' = ANY(e.event_types))
       AND (e.mail_classes IS NULL OR {mail_class} = ANY(e.mail_classes))
       AND (e.campaign_ids IS NULL OR {campaign} = ANY(e.campaign_ids))"""


def _insert(
    kind: str,
    data: str,
    source: str,
    mail_class: str = "CAST(NULL AS text)",
    campaign: str = "CAST(NULL AS bigint)",
) -> str:
    return f"""
    INSERT INTO webhook_deliveries (endpoint_id, type, payload)
    SELECT e.id, {kind}, jsonb_build_object('type', {kind}, 'timestamp', {ISO}, 'data', {data})
      FROM {source}
      JOIN webhook_endpoints e ON {_matches(kind, mail_class, campaign)}
     ORDER BY 1;"""


CAMPAIGN = f"""
CREATE FUNCTION webhook_out_campaign_status() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    kind text := CASE
        WHEN NEW.status = 'sending' AND OLD.status = 'paused' THEN 'campaign.resumed'
        WHEN NEW.status = 'sending' THEN 'campaign.started'
        WHEN NEW.status = 'paused' THEN 'campaign.paused'
        WHEN NEW.status = 'completed' THEN 'campaign.completed'
    END;
BEGIN
    IF kind IS NULL THEN
        RETURN NULL;
    END IF;
    {
    _insert(
        "kind",
        '''jsonb_build_object(
            'campaign_id', NEW.id, 'name', NEW.name, 'mail_class', NEW.mail_class,
            'status', NEW.status, 'previous_status', OLD.status,
            'reason', CASE WHEN NEW.status = 'paused' THEN NEW.paused_reason END,
            'stats', (SELECT to_jsonb(s) - 'campaign_id' FROM campaign_stats s
                       WHERE s.campaign_id = NEW.id))''',
        "(SELECT 1) AS one",
        "NEW.mail_class",
        "NEW.id",
    )
}
    RETURN NULL;
END $$;
CREATE TRIGGER webhook_out_campaign_status AFTER UPDATE OF status ON campaigns
   FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
   EXECUTE FUNCTION webhook_out_campaign_status();
"""

SUPPRESSION_CREATED = f"""
CREATE FUNCTION webhook_out_suppression_created() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {
    _insert(
        "CAST('suppression.created' AS text)",
        "jsonb_build_object('email', n.email, 'reason', n.reason, 'scope', n.scope,"
        " 'source', n.source)",
        "new_rows n",
    )
}
    RETURN NULL;
END $$;
CREATE TRIGGER webhook_out_suppression_created AFTER INSERT ON suppressions
   REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
   EXECUTE FUNCTION webhook_out_suppression_created();
"""

SUPPRESSION_DELETED = f"""
CREATE FUNCTION webhook_out_suppression_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {
    _insert(
        "CAST('suppression.deleted' AS text)",
        "jsonb_build_object('email', o.email, 'reason', o.reason, 'scope', o.scope,"
        " 'source', o.source)",
        "old_rows o",
    )
}
    RETURN NULL;
END $$;
CREATE TRIGGER webhook_out_suppression_deleted AFTER DELETE ON suppressions
   REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
   EXECUTE FUNCTION webhook_out_suppression_deleted();
"""

UNSUBSCRIBED = f"""
CREATE FUNCTION webhook_out_contact_unsubscribed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {
    _insert(
        "CAST('contact.unsubscribed' AS text)",
        "jsonb_build_object('contact_id', n.contact_id, 'email', c.email, 'source', n.source)",
        "new_rows n JOIN contacts c ON c.id = n.contact_id AND n.status = 'unsubscribed'",
    )
}
    RETURN NULL;
END $$;
CREATE TRIGGER webhook_out_contact_unsubscribed AFTER INSERT ON contact_status_changes
   REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
   EXECUTE FUNCTION webhook_out_contact_unsubscribed();
"""

IMPORT_COMPLETED = f"""
CREATE FUNCTION webhook_out_import_completed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {
    _insert(
        "CAST('import.completed' AS text)",
        '''jsonb_build_object('import_id', NEW.id, 'total_rows', NEW.total_rows,
            'created', NEW.created, 'updated', NEW.updated, 'rejected', NEW.rejected)''',
        "(SELECT 1) AS one",
    )
}
    RETURN NULL;
END $$;
CREATE TRIGGER webhook_out_import_completed AFTER UPDATE OF status ON contact_imports
   FOR EACH ROW WHEN (NEW.status = 'completed' AND OLD.status IS DISTINCT FROM 'completed')
   EXECUTE FUNCTION webhook_out_import_completed();
"""

TRIGGERS = {
    "webhook_out_campaign_status": ("campaigns", CAMPAIGN),
    "webhook_out_suppression_created": ("suppressions", SUPPRESSION_CREATED),
    "webhook_out_suppression_deleted": ("suppressions", SUPPRESSION_DELETED),
    "webhook_out_contact_unsubscribed": ("contact_status_changes", UNSUBSCRIBED),
    "webhook_out_import_completed": ("contact_imports", IMPORT_COMPLETED),
}


def upgrade() -> None:
    for _, sql in TRIGGERS.values():
        function, trigger = sql.split("\nCREATE TRIGGER")  # one statement per call
        op.execute(function)
        op.execute("CREATE TRIGGER" + trigger)


def downgrade() -> None:
    for name, (table, _) in TRIGGERS.items():
        op.execute(f"DROP TRIGGER {name} ON {table}")
        op.execute(f"DROP FUNCTION {name}()")
