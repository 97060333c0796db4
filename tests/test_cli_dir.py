"""CLI commands against a stack in another directory (issue 19): ``--dir``, the nearest
``.mailer-dev`` above, both database and Redis from one place, one clear line on failure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mailer.config import ROOT, Settings
from mailer.models import ApiKey


def run(
    cwd: Path, *args: str, stdin: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """``mailer ARGS`` from ``cwd`` with no MAILER_ variable but those given."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
    clean["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "mailer.cli", *args],
        env={**clean, **env},
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def stack_in(folder: Path, settings: Settings) -> Path:
    """A ``.mailer-dev`` whose stack.json names the test database and Redis, as a running
    ``mailer dev`` writes it (its launcher pid: this test process, alive)."""
    data = folder / ".mailer-dev"
    data.mkdir(parents=True)
    (data / "stack.json").write_text(
        json.dumps(
            {
                "pid": os.getpid(),
                "database_url": settings.database_url,
                "redis_url": settings.redis_url,
                "secret_key": settings.secret_key,
            }
        )
    )
    return data


async def _keys(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    async with sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(ApiKey)) or 0)


async def test_keys_and_status_take_dir_from_another_directory(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    data = stack_in(tmp_path / "project", settings)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    created = run(
        elsewhere, "keys", "create", "--name", "x", "--scope", "admin", "--dir", str(data)
    )
    assert created.returncode == 0, created.stderr
    key = created.stdout.splitlines()[-1]
    assert await _keys(sessionmaker) == 1
    checked = run(elsewhere, "keys", "check", "--dir", str(data), stdin=key)
    assert checked.stdout.strip() == "ok", checked.stderr
    status = run(elsewhere, "status", "--dir", str(data), COLUMNS="200")
    assert status.returncode == 0, status.stderr
    assert "campaigns" in status.stdout and "arq:send" in status.stdout


async def test_the_nearest_stack_above_is_found(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    stack_in(tmp_path / "project", settings)
    deep = tmp_path / "project" / "src" / "deeper"
    deep.mkdir(parents=True)
    created = run(deep, "keys", "create", "--name", "x", "--scope", "admin")
    assert created.returncode == 0, created.stderr
    assert "using the dev stack running from" in created.stderr
    assert await _keys(sessionmaker) == 1


async def test_failures_are_one_clear_line_not_a_traceback(
    settings: Settings, engine, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    # a directory with no running stack
    missing = run(tmp_path, "keys", "create", "--name", "x", "--scope", "admin", "--dir", "nope")
    assert missing.returncode == 1
    assert "no dev stack is running from nope" in missing.stderr
    assert "Traceback" not in missing.stderr
    # a database nobody can reach
    unreachable = run(
        tmp_path,
        "keys",
        "create",
        "--name",
        "x",
        "--scope",
        "admin",
        MAILER_DATABASE_URL="postgresql+asyncpg://root@127.0.0.1:9/nothing",
        MAILER_REDIS_URL="redis://127.0.0.1:9/0",
        MAILER_SECRET_KEY=settings.secret_key,
    )
    assert unreachable.returncode == 1
    assert "cannot reach the stack's database" in unreachable.stderr
    assert "Traceback" not in unreachable.stderr
    # a database that was never migrated
    async with engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("DROP DATABASE IF EXISTS mailer_cli_unmigrated"))
        await conn.execute(text("CREATE DATABASE mailer_cli_unmigrated"))
    bare = settings.database_url.rsplit("/", 1)[0] + "/mailer_cli_unmigrated"
    unmigrated = run(
        tmp_path, "status", MAILER_DATABASE_URL=bare, MAILER_REDIS_URL=settings.redis_url
    )
    assert unmigrated.returncode == 1
    assert "run `mailer migrate`" in unmigrated.stderr, unmigrated.stderr
    assert "Traceback" not in unmigrated.stderr
