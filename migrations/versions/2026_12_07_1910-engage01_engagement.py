"""engagement: per-message opens and clicks, links, timeline, recipient domains, retry, UTM.

Revision ID: engage01
Revises: console01a2b3
Create Date: 2026-12-07 18:30:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "engage01"
down_revision: str | Sequence[str] | None = "console01a2b3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STATS = ("unique_opened", "unique_clicked", "human_opened", "human_clicked", "retried")
_FEEDBACK = ("delivered", "bounced", "complained", "delayed", "opened")
_TIMELINE = ("sent", "delivered", "opens", "clicks", "bounced", "complained")


def _count(name: str) -> sa.Column:
    return sa.Column(name, sa.BigInteger(), server_default="0", nullable=False)


def upgrade() -> None:
    for name in _STATS:
        op.add_column("campaign_stats", _count(name))
    op.add_column("campaigns", sa.Column("utm", postgresql.JSONB(), nullable=True))
    op.add_column("messages", sa.Column("retried_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "message_engagement",
        sa.Column("message_id", sa.BigInteger(), nullable=False),
        sa.Column("campaign_id", sa.BigInteger(), nullable=True),
        sa.Column("opens", sa.Integer(), server_default="0", nullable=False),
        sa.Column("clicks", sa.Integer(), server_default="0", nullable=False),
        sa.Column("human_opens", sa.Integer(), server_default="0", nullable=False),
        sa.Column("human_clicks", sa.Integer(), server_default="0", nullable=False),
        sa.Column("first_open_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_click_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_human_open_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_human_click_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("links", postgresql.JSONB(), server_default="{}", nullable=False),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_message_engagement")),
    )
    op.create_table(
        "campaign_links",
        sa.Column("campaign_id", sa.BigInteger(), nullable=False),
        sa.Column("link", sa.Text(), nullable=False),
        sa.Column("tags", postgresql.JSONB(), server_default="{}", nullable=False),
        _count("clicks"),
        _count("clickers"),
        _count("human_clickers"),
        sa.PrimaryKeyConstraint("campaign_id", "link", name=op.f("pk_campaign_links")),
    )
    op.create_table(
        "campaign_timeline",
        sa.Column("campaign_id", sa.BigInteger(), nullable=False),
        sa.Column("bucket", sa.DateTime(timezone=True), nullable=False),
        *(_count(n) for n in _TIMELINE),
        sa.PrimaryKeyConstraint("campaign_id", "bucket", name=op.f("pk_campaign_timeline")),
    )
    op.create_table(
        "campaign_domains",
        sa.Column("campaign_id", sa.BigInteger(), nullable=False),
        sa.Column("domain", sa.Text(), nullable=False),
        *(_count(n) for n in _FEEDBACK),
        sa.PrimaryKeyConstraint("campaign_id", "domain", name=op.f("pk_campaign_domains")),
    )
    op.create_table(
        "domain_hours",
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("mail_class", sa.String(length=32), nullable=False),
        sa.Column("domain", sa.Text(), nullable=False),
        *(_count(n) for n in _FEEDBACK),
        sa.PrimaryKeyConstraint("hour", "mail_class", "domain", name=op.f("pk_domain_hours")),
    )
    op.create_index(
        "ix_domain_hours_mail_class", "domain_hours", ["mail_class", "hour"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_domain_hours_mail_class", table_name="domain_hours")
    for table in (
        "domain_hours",
        "campaign_domains",
        "campaign_timeline",
        "campaign_links",
        "message_engagement",
    ):
        op.drop_table(table)
    op.drop_column("messages", "retried_at")
    op.drop_column("campaigns", "utm")
    for name in reversed(_STATS):
        op.drop_column("campaign_stats", name)
