"""The ``mailer`` command, run as a real process against the test database."""

from __future__ import annotations

import os
import subprocess
import sys

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mailer.auth.service import allows, authenticate
from mailer.config import ROOT, Settings
from mailer.models import ApiKey


def mailer(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MAILER_DATABASE_URL": settings.database_url,
           "MAILER_REDIS_URL": settings.redis_url}
    return subprocess.run(
        [sys.executable, "-m", "mailer.cli", *args], env=env, cwd=ROOT,
        capture_output=True, text=True, timeout=60, check=False,
    )


async def test_keys_create_prints_a_working_key_alone_on_the_last_line(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    result = mailer(settings, "keys", "create", "--name", "ci", "--scope", "campaigns",
                    "--scope", "reputation")

    assert result.returncode == 0, result.stderr
    raw = result.stdout.splitlines()[-1]
    assert raw == raw.strip() and " " not in raw
    async with sessionmaker() as session:
        key = await authenticate(session, raw)
    assert key is not None
    assert key.name == "ci"
    assert allows(key, "campaigns") and allows(key, "reputation")
    assert not allows(key, "transactional")


async def test_keys_create_with_an_unknown_scope_exits_2_and_creates_nothing(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    result = mailer(settings, "keys", "create", "--name", "bad", "--scope", "campaigns",
                    "--scope", "everything")

    assert result.returncode == 2
    assert "everything" in result.stderr
    assert result.stdout.strip() == ""
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(ApiKey)) == 0


async def test_keys_check_tells_a_live_key_from_an_unknown_one(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    raw = mailer(settings, "keys", "create", "--name", "x", "--scope", "admin").stdout
    key = raw.splitlines()[-1]

    assert mailer(settings, "keys", "check", key).returncode == 0
    assert mailer(settings, "keys", "check", key[:-2] + "xx").returncode == 1
