"""Reputation rollups, SES account state per region, auto-pauses.

Revision ID: g12a1b2c3d4
Revises: c8a1f0e2d3b4
Create Date: 2026-12-01 09:10:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "g12a1b2c3d4"
down_revision: str | Sequence[str] | None = "c8a1f0e2d3b4"  # after i8's; was e5f6a7b8c9d0
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _counter(name: str) -> sa.Column:
    return sa.Column(name, sa.BigInteger(), server_default="0", nullable=False)


def upgrade() -> None:
    op.create_table(
        "reputation_minutes",
        sa.Column("minute", sa.DateTime(timezone=True), nullable=False),
        sa.Column("mail_class", sa.String(length=32), nullable=False),
        sa.Column("region", sa.String(length=32), nullable=False),
        sa.Column("configuration_set", sa.Text(), nullable=False),
        sa.Column("campaign_id", sa.BigInteger(), nullable=False),
        _counter("sent"),
        _counter("delivered"),
        _counter("hard_bounces"),
        _counter("soft_bounces"),
        _counter("complaints"),
        sa.PrimaryKeyConstraint(
            "minute",
            "mail_class",
            "region",
            "configuration_set",
            "campaign_id",
            name=op.f("pk_reputation_minutes"),
        ),
    )
    op.create_index(
        "ix_reputation_minutes_campaign_id", "reputation_minutes", ["campaign_id", "minute"]
    )
    op.create_index(
        "ix_reputation_minutes_mail_class", "reputation_minutes", ["mail_class", "minute"]
    )
    op.create_table(
        "region_accounts",
        sa.Column("region", sa.String(length=32), nullable=False),
        sa.Column("max_send_rate", sa.Float(), nullable=True),
        sa.Column("max_24h_send", sa.Float(), nullable=True),
        sa.Column("sent_last_24h", sa.Float(), nullable=True),
        sa.Column("sending_enabled", sa.Boolean(), nullable=True),
        sa.Column("enforcement_status", sa.Text(), nullable=True),
        sa.Column("production_access", sa.Boolean(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column(
            "checked_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("region", name=op.f("pk_region_accounts")),
    )
    op.create_table(
        "auto_pauses",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("mail_class", sa.String(length=32), nullable=False),
        sa.Column("campaign_id", sa.BigInteger(), nullable=True),
        _counter("campaigns"),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("resumed_at", sa.DateTime(timezone=True), nullable=True),
        _counter("base_sent"),
        _counter("base_hard_bounces"),
        _counter("base_complaints"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auto_pauses")),
    )
    op.create_index("ix_auto_pauses_mail_class", "auto_pauses", ["mail_class", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_auto_pauses_mail_class", table_name="auto_pauses")
    op.drop_table("auto_pauses")
    op.drop_table("region_accounts")
    op.drop_index("ix_reputation_minutes_mail_class", table_name="reputation_minutes")
    op.drop_index("ix_reputation_minutes_campaign_id", table_name="reputation_minutes")
    op.drop_table("reputation_minutes")
