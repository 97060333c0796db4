"""Campaigns record when their audience was fixed; messages.contact_id loses its foreign key.

The foreign key cost a trigger call per row on million-row audience inserts; erasing a
contact now clears its messages itself. downgrade() first nulls dangling contact ids (what
ON DELETE SET NULL would have done) so that the key can be put back.

Revision ID: a9b14febe2a0
Revises: 189ea5bdbb32
Create Date: 2026-11-26 12:17:06.065223+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a9b14febe2a0"
down_revision: str | Sequence[str] | None = "189ea5bdbb32"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "campaigns", sa.Column("audience_fixed_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.drop_constraint(op.f("fk_messages_contact_id_contacts"), "messages", type_="foreignkey")


def downgrade() -> None:
    op.execute(
        "UPDATE messages SET contact_id = NULL WHERE contact_id IS NOT NULL"
        " AND NOT EXISTS (SELECT 1 FROM contacts WHERE contacts.id = messages.contact_id)"
    )
    op.create_foreign_key(
        op.f("fk_messages_contact_id_contacts"),
        "messages",
        "contacts",
        ["contact_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.drop_column("campaigns", "audience_fixed_at")
