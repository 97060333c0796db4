"""Events are stored once: a dedup key per event and the notification it came from;
notifications for SES message ids not recorded yet are retried a little later.

Revision ID: c8a1f0e2d3b4
Revises: e5f6a7b8c9d0
Create Date: 2026-12-01 09:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c8a1f0e2d3b4"
down_revision: str | Sequence[str] | None = "d9a1b2c3d4e5"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "sns_notifications", sa.Column("retry_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column("events", sa.Column("sns_notification_id", sa.BigInteger(), nullable=True))
    # no events exist before this revision (nothing wrote them), so no backfill is needed
    op.add_column("events", sa.Column("dedup_key", sa.Text(), nullable=False))
    op.create_unique_constraint("uq_events_dedup_key", "events", ["dedup_key"])


def downgrade() -> None:
    op.drop_constraint("uq_events_dedup_key", "events", type_="unique")
    op.drop_column("events", "dedup_key")
    op.drop_column("events", "sns_notification_id")
    op.drop_column("sns_notifications", "retry_at")
