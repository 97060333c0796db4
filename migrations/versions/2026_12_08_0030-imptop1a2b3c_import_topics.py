"""Topic subscriptions in contact imports: the staged rows' topics, and whether a file
has topic columns at all (its chunks then set them; a file without skips the statement).

Revision ID: imptop1a2b3c
Revises: whout2b3c4d5
Create Date: 2026-12-08 00:30:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "imptop1a2b3c"
down_revision: str | Sequence[str] | None = "whout2b3c4d5"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "contact_imports",
        sa.Column("with_topics", sa.Boolean(), server_default="false", nullable=False),
    )
    op.add_column("contact_import_rows", sa.Column("topics", JSONB(), nullable=True))


def downgrade() -> None:
    op.drop_column("contact_import_rows", "topics")
    op.drop_column("contact_imports", "with_topics")
