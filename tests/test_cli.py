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


def mailer(
    settings: Settings, *args: str, input: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "MAILER_DATABASE_URL": settings.database_url,
        "MAILER_REDIS_URL": settings.redis_url,
        "MAILER_SECRET_KEY": settings.secret_key,
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "mailer.cli", *args],
        env=env,
        cwd=ROOT,
        input=input,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_keys_create_prints_a_working_key_alone_on_the_last_line(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    result = mailer(
        settings, "keys", "create", "--name", "ci", "--scope", "campaigns", "--scope", "reputation"
    )

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
    result = mailer(
        settings, "keys", "create", "--name", "bad", "--scope", "campaigns", "--scope", "everything"
    )

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

    assert mailer(settings, "keys", "check", input=key + "\n").returncode == 0
    assert mailer(settings, "keys", "check", input=key[:-2] + "xx").returncode == 1


async def test_import_reads_a_file_with_a_progress_bar_and_lists_bad_rows(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], tmp_path
) -> None:
    from sqlalchemy import text

    path = tmp_path / "contacts.csv"
    path.write_text(
        "email,name,tags\nok@example.test,Ok,a\nnot-an-address,No,\n"
        "OK@example.test,Again,\nfine@example.test,Fine,\n"
    )
    result = mailer(settings, "import", str(path), "--tag", "fair")

    assert result.returncode == 0, result.stderr
    assert "4 rows, 2 created, 0 updated, 2 rejected" in result.stdout
    assert "not-an-address" in result.stdout and "duplicate of row 2" in result.stdout
    assert "importing" in result.stderr  # the progress bar
    async with sessionmaker() as session:
        rows = (
            await session.execute(text("SELECT email, tags FROM contacts ORDER BY email"))
        ).all()
    assert rows == [("fine@example.test", ["fair"]), ("ok@example.test", ["a", "fair"])]


async def test_import_of_a_file_without_an_email_column_exits_2(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], tmp_path
) -> None:
    from sqlalchemy import text

    path = tmp_path / "bad.csv"
    path.write_text("name\nAda\n")
    result = mailer(settings, "import", str(path))
    assert result.returncode == 2 and "no 'email' column" in result.stderr
    async with sessionmaker() as session:
        assert (await session.execute(text("SELECT count(*) FROM contact_imports"))).scalar() == 0


async def test_keys_create_refuses_a_weak_secret_key_and_creates_nothing(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    for weak in ("dev-secret-change-me", "too-short-a-key"):
        done = mailer(
            settings, "keys", "create", "--name", "x", "--scope", "admin", MAILER_SECRET_KEY=weak
        )
        assert done.returncode == 2 and done.stdout == ""
        assert "make one with `mailer secret`" in done.stderr.splitlines()[-1]
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(ApiKey)) == 0


async def test_a_key_from_mailer_secret_is_accepted(settings: Settings) -> None:
    fresh = mailer(settings, "secret").stdout.strip()
    done = mailer(
        settings, "keys", "create", "--name", "x", "--scope", "admin", MAILER_SECRET_KEY=fresh
    )
    assert done.returncode == 0 and done.stdout.strip().startswith("mk_")


async def test_keys_check_reads_standard_input_and_says_when_it_is_empty(
    settings: Settings,
) -> None:
    key = mailer(settings, "keys", "create", "--name", "x", "--scope", "admin").stdout.strip()
    assert mailer(settings, "keys", "check", input=key).stdout.strip() == "ok"
    empty = mailer(settings, "keys", "check", input="")
    assert empty.returncode == 2 and "no key on standard input" in empty.stderr
    # the key as an argument (where ps shows it) is not taken
    assert mailer(settings, "keys", "check", key).returncode == 2


async def test_keys_list_and_revoke(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    raw = [
        mailer(settings, "keys", "create", "--name", name, "--scope", "campaigns").stdout.strip()
        for name in ("alpha", "beta")
    ]
    async with sessionmaker() as session:
        ids = list((await session.execute(select(ApiKey.id).order_by(ApiKey.id))).scalars())

    listed = mailer(settings, "keys", "list")
    assert listed.returncode == 0
    assert "alpha" in listed.stdout and "beta" in listed.stdout
    assert not any(k in listed.stdout for k in raw)  # never the keys themselves

    done = mailer(settings, "keys", "revoke", str(ids[0]))
    assert done.returncode == 0 and f"revoked key {ids[0]} 'alpha'" in done.stdout
    assert mailer(settings, "keys", "check", input=raw[0]).returncode == 1
    assert mailer(settings, "keys", "check", input=raw[1]).returncode == 0
    async with sessionmaker() as session:
        assert await authenticate(session, raw[0]) is None
    assert mailer(settings, "keys", "revoke", "999999").returncode == 1
