"""A/B tests: a campaign's variants, its test settings and decision, each message's variant.

Revision ID: engage02
Revises: engage01
Create Date: 2026-12-07 19:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "engage02"
down_revision: str | Sequence[str] | None = "engage01"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("campaigns", sa.Column("ab_test", postgresql.JSONB(), nullable=True))
    op.add_column("messages", sa.Column("variant", sa.SmallInteger(), nullable=True))
    op.create_index(
        "ix_messages_campaign_variant",
        "messages",
        ["campaign_id", "variant"],
        unique=False,
        postgresql_where=sa.text("variant IS NOT NULL"),
    )
    op.create_table(
        "campaign_variants",
        sa.Column("campaign_id", sa.BigInteger(), nullable=False),
        sa.Column("variant", sa.SmallInteger(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("template_version_id", sa.BigInteger(), nullable=True),
        sa.Column("from_address", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_variants_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("campaign_id", "variant", name=op.f("pk_campaign_variants")),
    )


def downgrade() -> None:
    op.drop_table("campaign_variants")
    op.drop_index("ix_messages_campaign_variant", table_name="messages")
    op.drop_column("messages", "variant")
    op.drop_column("campaigns", "ab_test")
