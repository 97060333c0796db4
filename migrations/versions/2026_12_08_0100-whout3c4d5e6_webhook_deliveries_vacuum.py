"""The delivery log vacuumed by the count of its changes, not by its size.

``webhook_deliveries`` is a queue: every event is inserted pending, then updated once or
more (leased, delivered, retried), some hundreds of rows a second. Autovacuum's default
waits for a fifth of the table to be dead; on a log holding weeks of deliveries that is
millions of dead rows, whose index entries the claims walk past (the due index is read
from the oldest due row of each endpoint). Here the table is vacuumed after every 5,000
changed rows and analysed after 20,000, whatever its size.

Revision ID: whout3c4d5e6
Revises: imptop1a2b3c
Create Date: 2026-12-08 01:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "whout3c4d5e6"
down_revision: str | Sequence[str] | None = "imptop1a2b3c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE webhook_deliveries SET (
            autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000,
            autovacuum_vacuum_insert_scale_factor = 0, autovacuum_vacuum_insert_threshold = 20000,
            autovacuum_analyze_scale_factor = 0, autovacuum_analyze_threshold = 20000)
        """
    )


def downgrade() -> None:
    op.execute(
        """
        ALTER TABLE webhook_deliveries RESET (
            autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold,
            autovacuum_vacuum_insert_scale_factor, autovacuum_vacuum_insert_threshold,
            autovacuum_analyze_scale_factor, autovacuum_analyze_threshold)
        """
    )
