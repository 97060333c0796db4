"""Template versions keep their format (html or mjml) and, for MJML, the source.

The ``html`` column holds what is rendered: the HTML itself, or the HTML the MJML source
was compiled to when the version was saved.

Revision ID: e10a7c4d2b91
Revises: e5f6a7b8c9d0
Create Date: 2026-12-01 09:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e10a7c4d2b91"
down_revision: str | Sequence[str] | None = "g12a1b2c3d4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "template_versions", sa.Column("format", sa.Text(), nullable=False, server_default="html")
    )
    op.add_column("template_versions", sa.Column("source", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("template_versions", "source")
    op.drop_column("template_versions", "format")
