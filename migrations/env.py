"""Alembic environment, async: migrations run on an asyncpg engine.

The URL is ``sqlalchemy.url`` when set (``mailer.migrate.alembic_config`` sets it), else
``MAILER_DATABASE_URL``. A caller may also hand over an open sync connection in
``config.attributes["connection"]`` (e.g. from ``AsyncConnection.run_sync``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from logging.config import fileConfig
from typing import Any

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import create_async_engine

from mailer.config import get_settings
from mailer.models import Base

config = context.config
target_metadata = Base.metadata

# Only configure logging for the CLI-like case: inside an application or a test run the
# host already owns logging, and fileConfig would silence its loggers.
if config.config_file_name is not None and not logging.getLogger().handlers:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

CONTEXT_OPTIONS: dict[str, Any] = {
    "target_metadata": target_metadata,
    "compare_type": True,
    "compare_server_default": True,
    # one transaction for the whole upgrade: PostgreSQL DDL is transactional
    "transaction_per_migration": False,
}


def database_url() -> str:
    url = config.get_main_option("sqlalchemy.url") or get_settings().database_url
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        # a plain postgresql:// URL still runs on the async driver the project uses
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


def run_migrations_offline() -> None:
    """``alembic upgrade --sql``: emit the SQL instead of running it."""
    context.configure(
        url=database_url(),
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        **CONTEXT_OPTIONS,
    )
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    context.configure(connection=connection, **CONTEXT_OPTIONS)
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations() -> None:
    # NullPool: a one-off engine, nothing to keep open after the upgrade
    engine = create_async_engine(database_url(), poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(do_run_migrations)
            await connection.commit()
    finally:
        await engine.dispose()


def _in_running_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        do_run_migrations(connection)
        return
    if not _in_running_loop():
        asyncio.run(run_async_migrations())
        return
    # Called from code that is itself inside an event loop: asyncio.run would refuse, so
    # run the migration on a loop of its own in a fresh thread and wait for it.
    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(run_async_migrations())
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=target, name="alembic-migrate")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
