"""Audiences: streamed CSV staging, status changes, erasures.

- ``contact_import_rows`` (UNLOGGED) holds the good rows of an upload, COPYed in while the
  request body streams; the upload itself is no longer stored (``contact_imports.source``
  goes), only the attribute column names and how far the job has merged.
- ``contact_status_changes``: subscribed ↔ unsubscribed with source and time.
- ``contact_erasures``: erased contacts, recorded by an HMAC of the address.

Revision ID: f11a1b2c3d4e
Revises: e5f6a7b8c9d0
Create Date: 2026-12-01 09:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "f11a1b2c3d4e"
down_revision: str | Sequence[str] | None = "e10a7c4d2b91"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_column("contact_imports", "source")
    op.add_column(
        "contact_imports",
        sa.Column(
            "attribute_keys", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False
        ),
    )
    op.add_column(
        "contact_imports",
        sa.Column("merged_through", sa.BigInteger(), server_default="0", nullable=False),
    )
    op.create_table(
        "contact_import_rows",
        sa.Column("import_id", sa.BigInteger(), nullable=False),
        sa.Column("row", sa.BigInteger(), nullable=False),
        sa.Column("email", sa.Text(), nullable=False),
        sa.Column("attribute_values", sa.Text(), nullable=False),
        sa.Column("tags", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=True),
        sa.Column("duplicate_of", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("import_id", "row", name=op.f("pk_contact_import_rows")),
        prefixes=["UNLOGGED"],
    )
    op.create_table(
        "contact_status_changes",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("contact_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column(
            "changed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_status_changes")),
    )
    op.create_index(
        "ix_contact_status_changes_contact", "contact_status_changes", ["contact_id", "id"]
    )
    op.create_table(
        "contact_erasures",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("address_hmac", sa.String(length=64), nullable=False),
        sa.Column("messages", sa.BigInteger(), nullable=False),
        sa.Column("events", sa.BigInteger(), nullable=False),
        sa.Column("suppressed", sa.Boolean(), nullable=False),
        sa.Column(
            "erased_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_erasures")),
    )


def downgrade() -> None:
    op.drop_table("contact_erasures")
    op.drop_index("ix_contact_status_changes_contact", table_name="contact_status_changes")
    op.drop_table("contact_status_changes")
    op.drop_table("contact_import_rows")
    op.drop_column("contact_imports", "merged_through")
    op.drop_column("contact_imports", "attribute_keys")
    op.add_column("contact_imports", sa.Column("source", sa.LargeBinary(), nullable=True))
