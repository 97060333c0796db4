"""Messages lose their remaining per-row foreign-key triggers; the SES id index is partial.

An audience fix-up inserts a million messages in one statement: each foreign key cost a
trigger call per row, and the full index on ses_message_id an entry per (still NULL) id.

Revision ID: c3d1e2f4a5b6
Revises: a9b14febe2a0
Create Date: 2026-11-26 13:45:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c3d1e2f4a5b6"
down_revision: str | Sequence[str] | None = "a9b14febe2a0"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_constraint(op.f("fk_messages_campaign_id_campaigns"), "messages", type_="foreignkey")
    op.drop_constraint(
        op.f("fk_messages_template_version_id_template_versions"), "messages", type_="foreignkey"
    )
    op.drop_index("ix_messages_ses_message_id", table_name="messages")
    op.create_index(
        "ix_messages_ses_message_id",
        "messages",
        ["ses_message_id"],
        postgresql_where=sa.text("ses_message_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_messages_ses_message_id", table_name="messages")
    op.create_index("ix_messages_ses_message_id", "messages", ["ses_message_id"])
    op.create_foreign_key(
        op.f("fk_messages_template_version_id_template_versions"),
        "messages",
        "template_versions",
        ["template_version_id"],
        ["id"],
    )
    op.create_foreign_key(
        op.f("fk_messages_campaign_id_campaigns"),
        "messages",
        "campaigns",
        ["campaign_id"],
        ["id"],
        ondelete="CASCADE",
    )
