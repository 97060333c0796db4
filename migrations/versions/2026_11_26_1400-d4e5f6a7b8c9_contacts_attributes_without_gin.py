"""Contacts lose the GIN index on attributes.

A CSV import upserts a million contacts; the jsonb GIN index (entries for every key and
value, most values unique such as names) made the 1,000,000-row import bench take 68 s
instead of 53 s, and jsonb_path_ops was no cheaper (73 s). Of the segment filters only
eq/in (``@>``) and exists (``?``) could use it; ordered comparisons and text matches read
``attributes ->> key``, which it does not serve, and fixing an audience scans all contacts
anyway. Without it a selective attribute count is a sequential scan.

Revision ID: d4e5f6a7b8c9
Revises: c3d1e2f4a5b6
Create Date: 2026-11-26 14:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "d4e5f6a7b8c9"
down_revision: str | Sequence[str] | None = "c3d1e2f4a5b6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_contacts_attributes", table_name="contacts", postgresql_using="gin")


def downgrade() -> None:
    op.create_index("ix_contacts_attributes", "contacts", ["attributes"], postgresql_using="gin")
