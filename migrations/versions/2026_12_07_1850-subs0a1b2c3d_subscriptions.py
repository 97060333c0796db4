"""Subscriptions: topics, contact_topics, topic_changes (consent records), forms,
confirmations; campaigns.topic_id.

Revision ID: subs0a1b2c3d
Revises: h13b2c3d4e5f
Create Date: 2026-12-07 19:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "subs0a1b2c3d"
down_revision: str | Sequence[str] | None = "h13b2c3d4e5f"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _now(name: str) -> sa.Column:
    return sa.Column(
        name, sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "topics",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("public", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("double_opt_in", sa.Boolean(), server_default="true", nullable=False),
        _now("created_at"),
        _now("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_topics")),
        sa.UniqueConstraint("name", name=op.f("uq_topics_name")),
    )
    op.create_table(
        "contact_topics",
        sa.Column("contact_id", sa.BigInteger(), nullable=False),
        sa.Column("topic_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        _now("updated_at"),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_contact_topics_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["topic_id"],
            ["topics.id"],
            name=op.f("fk_contact_topics_topic_id_topics"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("contact_id", "topic_id", name=op.f("pk_contact_topics")),
    )
    op.create_index(
        "ix_contact_topics_topic", "contact_topics", ["topic_id", "status", "contact_id"]
    )
    op.create_table(
        "topic_changes",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("contact_id", sa.BigInteger(), nullable=False),
        sa.Column("topic_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("form_id", sa.BigInteger(), nullable=True),
        sa.Column("form_version", sa.Integer(), nullable=True),
        sa.Column("shown", sa.Text(), nullable=True),
        sa.Column("ip", sa.Text(), nullable=True),
        sa.Column("user_agent", sa.Text(), nullable=True),
        _now("changed_at"),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_topic_changes_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["topic_id"],
            ["topics.id"],
            name=op.f("fk_topic_changes_topic_id_topics"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_topic_changes")),
    )
    op.create_index("ix_topic_changes_contact", "topic_changes", ["contact_id", "id"])
    op.create_table(
        "forms",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("topic_ids", postgresql.ARRAY(sa.BigInteger()), nullable=False),
        sa.Column("fields", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("consent_text", sa.Text(), server_default="", nullable=False),
        sa.Column("redirect_url", sa.Text(), nullable=True),
        sa.Column("message", sa.Text(), server_default="", nullable=False),
        sa.Column("from_address", sa.Text(), nullable=False),
        sa.Column("confirm_subject", sa.Text(), nullable=True),
        sa.Column("confirm_html", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        _now("created_at"),
        _now("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_forms")),
    )
    op.create_table(
        "confirmations",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("contact_id", sa.BigInteger(), nullable=False),
        sa.Column("form_id", sa.BigInteger(), nullable=False),
        sa.Column("topic_ids", postgresql.ARRAY(sa.BigInteger()), nullable=False),
        sa.Column("message_id", sa.BigInteger(), nullable=True),
        _now("created_at"),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_confirmations_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["form_id"],
            ["forms.id"],
            name=op.f("fk_confirmations_form_id_forms"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_confirmations")),
    )
    op.create_index(
        "ix_confirmations_contact_form", "confirmations", ["contact_id", "form_id", "id"]
    )
    op.add_column("campaigns", sa.Column("topic_id", sa.BigInteger(), nullable=True))
    op.create_foreign_key(
        op.f("fk_campaigns_topic_id_topics"), "campaigns", "topics", ["topic_id"], ["id"]
    )


def downgrade() -> None:
    op.drop_constraint(op.f("fk_campaigns_topic_id_topics"), "campaigns", type_="foreignkey")
    op.drop_column("campaigns", "topic_id")
    op.drop_index("ix_confirmations_contact_form", table_name="confirmations")
    op.drop_table("confirmations")
    op.drop_table("forms")
    op.drop_index("ix_topic_changes_contact", table_name="topic_changes")
    op.drop_table("topic_changes")
    op.drop_index("ix_contact_topics_topic", table_name="contact_topics")
    op.drop_table("contact_topics")
    op.drop_table("topics")
