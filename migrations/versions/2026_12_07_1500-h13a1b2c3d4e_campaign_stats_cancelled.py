"""campaign_stats.cancelled: messages of a campaign cancelled before they were sent.

Revision ID: h13a1b2c3d4e
Revises: f11a1b2c3d4e
Create Date: 2026-12-07 15:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "h13a1b2c3d4e"
down_revision: str | Sequence[str] | None = "f11a1b2c3d4e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "campaign_stats",
        sa.Column("cancelled", sa.BigInteger(), server_default="0", nullable=False),
    )
    # campaigns cancelled before this counter existed: count their messages once
    op.execute(
        """
        UPDATE campaign_stats s SET cancelled = c.n
          FROM (SELECT campaign_id, count(*) AS n FROM messages
                 WHERE campaign_id IS NOT NULL AND status = 'cancelled'
                 GROUP BY campaign_id) c
         WHERE s.campaign_id = c.campaign_id
        """
    )


def downgrade() -> None:
    op.drop_column("campaign_stats", "cancelled")
