"""Migrations: they run both ways, and they build exactly the schema the models describe."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from mailer.config import ROOT, Settings
from mailer.migrate import alembic_config
from mailer.models import Base

VERSIONS = ROOT / "migrations" / "versions"
DATED_NAME = re.compile(r"^\d{4}_\d{2}_\d{2}_\d{4}-[0-9a-z]+_[a-z0-9_]+\.py$")


@pytest.fixture
async def scratch_url(settings: Settings) -> AsyncIterator[str]:
    """An empty database of its own, next to the test database, dropped afterwards."""
    url = make_url(settings.database_url)
    name = f"{url.database}_migrations"
    admin = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield url.set(database=name).render_as_string(hide_password=False)
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await admin.dispose()


async def _relations(engine: AsyncEngine) -> set[str]:
    """Tables, sequences, indexes, views and types left in the public schema."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = 'public'"
                " UNION ALL"
                " SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace"
                " WHERE n.nspname = 'public' AND t.typtype IN ('e', 'd')"
            )
        )
        return {row[0] for row in rows}


def _diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "compare_server_default": True}
    )
    return list(compare_metadata(context, Base.metadata))


def test_one_head_and_dated_file_names() -> None:
    script = ScriptDirectory.from_config(alembic_config("postgresql+asyncpg://unused/unused"))
    assert len(script.get_heads()) == 1, "migrations branched: merge the heads"
    names = [p.name for p in Path(VERSIONS).glob("*.py")]
    assert names
    assert [n for n in names if not DATED_NAME.match(n)] == []


async def test_upgrade_downgrade_upgrade(scratch_url: str) -> None:
    config = alembic_config(scratch_url)
    engine = create_async_engine(scratch_url)
    try:
        # called from inside the running test loop on purpose: env.py must cope
        command.upgrade(config, "head")
        created = await _relations(engine)
        assert {t.name for t in Base.metadata.sorted_tables} <= created

        command.downgrade(config, "base")
        assert await _relations(engine) <= {"alembic_version", "alembic_version_pkc"}

        command.upgrade(config, "head")
        assert await _relations(engine) == created
    finally:
        await engine.dispose()


async def test_models_and_migrations_agree(scratch_url: str) -> None:
    command.upgrade(alembic_config(scratch_url), "head")
    engine = create_async_engine(scratch_url)
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(_diff)
    finally:
        await engine.dispose()
    assert diff == [], "models and migrations differ; run `alembic revision --autogenerate`"
