"""Recipient domains' MX, for grouping custom domains into mailbox providers.

A domain outside the fixed table of consumer domains (``mailer.engagement.providers``) is
shown under the provider hosting its mail when its MX names one (Google Workspace,
Microsoft 365, …). The look-ups are done by a periodic job (``mailer.engagement.mx``),
never on a report's path; the reports join this table over their distinct domains.

Revision ID: provmx1a2b3c
Revises: whout4d5e6f7
Create Date: 2026-12-08 01:40:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "provmx1a2b3c"
down_revision: str | Sequence[str] | None = "whout4d5e6f7"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "domain_mx",
        sa.Column("domain", sa.Text(), primary_key=True),
        sa.Column("provider", sa.Text(), nullable=True),
        sa.Column("mx", sa.Text(), nullable=True),
        sa.Column("failed", sa.Boolean(), nullable=False, server_default="false"),
        sa.Column("looked_up_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("domain_mx")
