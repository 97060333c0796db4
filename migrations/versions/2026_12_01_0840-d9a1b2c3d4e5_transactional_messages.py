"""Transactional messages: tags, headers, test sends of a campaign; idempotency key sweep.

Revision ID: d9a1b2c3d4e5
Revises: e5f6a7b8c9d0
Create Date: 2026-12-01 08:40:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "d9a1b2c3d4e5"
down_revision: str | Sequence[str] | None = "e5f6a7b8c9d0"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("messages", sa.Column("tags", postgresql.JSONB(), nullable=True))
    op.add_column("messages", sa.Column("headers", postgresql.JSONB(), nullable=True))
    op.add_column("messages", sa.Column("test_campaign_id", sa.BigInteger(), nullable=True))
    op.create_index(
        "ix_messages_transactional_email",
        "messages",
        ["email", "id"],
        postgresql_where=sa.text("campaign_id IS NULL"),
    )
    op.create_index("ix_idempotency_keys_created_at", "idempotency_keys", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_idempotency_keys_created_at", table_name="idempotency_keys")
    op.drop_index("ix_messages_transactional_email", table_name="messages")
    op.drop_column("messages", "test_campaign_id")
    op.drop_column("messages", "headers")
    op.drop_column("messages", "tags")
