"""Server-side dashboard sessions (web_sessions); erasures found by their HMAC.

Revision ID: h13b2c3d4e5f
Revises: h13a1b2c3d4e
Create Date: 2026-12-07 16:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "h13b2c3d4e5f"
down_revision: str | Sequence[str] | None = "h13a1b2c3d4e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "web_sessions",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("subject_kind", sa.Text(), nullable=False),
        sa.Column("subject_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_sessions")),
    )
    op.create_index(
        "ix_web_sessions_subject",
        "web_sessions",
        ["subject_kind", "subject_id"],
        postgresql_where=sa.text("ended_at IS NULL"),
    )
    op.create_index("ix_contact_erasures_address_hmac", "contact_erasures", ["address_hmac"])


def downgrade() -> None:
    op.drop_index("ix_contact_erasures_address_hmac", table_name="contact_erasures")
    op.drop_index("ix_web_sessions_subject", table_name="web_sessions")
    op.drop_table("web_sessions")
