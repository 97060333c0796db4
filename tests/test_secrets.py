"""The secret key rule (mailer/secrets.py): a missing, published, placeholder or short key
is refused by the API, by ``mailer api`` and ``mailer worker`` processes and by the CLI
commands that sign or hand out credentials, with one line saying how to make one;
``mailer secret`` makes one that is accepted; ``mailer dev`` keeps one per data directory."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from mailer import secrets
from mailer.config import ROOT, Settings
from mailer.local.devstack import dev_secrets
from tests.fixtures.api import free_port

WEAK = {
    "dev-secret-change-me": "is a published default",  # the old built-in default
    "change-me": "is a published default",  # docker/.env.example's
    "please-change-me-before-going-to-production-ok": "is a placeholder",
    "<your secret key here, at least 32 bytes long>": "is a placeholder",
    "s3cr3t-but-only-28-bytes-xyz": "is shorter than 32 bytes",
    "ab" * 20: "is not random",
    "": "is not set",
}


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_SECRET")}
    env.update(
        MAILER_DATABASE_URL=settings.database_url,
        MAILER_REDIS_URL=settings.redis_url,
        MAILER_LOG_LEVEL="WARNING",
        **extra,
    )
    return env


def _mailer(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    # a process that does not refuse runs until the timeout: the test fails, it never hangs
    return subprocess.run(
        [sys.executable, "-m", "mailer.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("key", list(WEAK))
def test_weak_keys_are_named_with_the_reason(key: str) -> None:
    assert WEAK[key] in (secrets.weakness(key) or "")


def test_the_rule_covers_every_rotated_key_too(settings: Settings) -> None:
    good = secrets.new_key()
    rotated = settings.model_copy(update={"secret_keys": [good, "change-me"]})
    assert "MAILER_SECRET_KEYS: key 2 is a published default" in (secrets.problem(rotated) or "")
    # a MAILER_SECRET_KEY the list does not hold would sign and verify nothing: refused
    forgotten = settings.model_copy(update={"secret_keys": [good]})
    assert "not one of MAILER_SECRET_KEYS" in (secrets.problem(forgotten) or "")
    fine = settings.model_copy(update={"secret_keys": [good, settings.secret_key]})
    assert secrets.problem(fine) is None
    assert secrets.signing_key(fine) == good
    assert secrets.verifying_keys(fine) == (good, settings.secret_key)


@pytest.mark.parametrize("key", ["dev-secret-change-me", "change-me", "short-key", ""])
def test_create_app_refuses_a_weak_key(settings: Settings, key: str) -> None:
    from mailer.app import create_app

    with pytest.raises(secrets.WeakSecret) as refused:
        create_app(settings.model_copy(update={"secret_key": key}))
    assert "mailer secret" in str(refused.value) and "\n" not in str(refused.value)


@pytest.mark.parametrize("key", ["dev-secret-change-me", "short-key"])
def test_mailer_worker_exits_with_the_line(settings: Settings, key: str) -> None:
    done = _mailer(_env(settings, MAILER_SECRET_KEY=key), "worker")
    assert done.returncode == 2
    assert "refusing to start: MAILER_SECRET_KEY" in done.stderr
    assert "make one with `mailer secret`" in done.stderr


def test_mailer_worker_without_any_key_exits_with_the_line(settings: Settings) -> None:
    done = _mailer(_env(settings), "worker", "--queues", "events")
    assert done.returncode == 2 and "MAILER_SECRET_KEY is not set" in done.stderr


def test_mailer_api_exits_with_the_line(settings: Settings) -> None:
    done = _mailer(_env(settings, MAILER_SECRET_KEY="change-me"), "api", "--port", str(free_port()))
    assert done.returncode == 2
    assert (
        "MAILER_SECRET_KEY is a published default; make one with `mailer secret`"
        in (done.stderr.splitlines()[-1])
    )


def test_mailer_secret_prints_a_fresh_key_that_is_accepted() -> None:
    first, second = (
        _mailer(dict(os.environ), "secret").stdout.strip(),
        _mailer(dict(os.environ), "secret").stdout.strip(),
    )
    assert first != second
    assert secrets.weakness(first) is None and len(first.encode()) >= 32


def test_mailer_dev_keeps_a_random_key_per_data_directory(tmp_path: Path) -> None:
    made = dev_secrets(tmp_path / "one")
    assert secrets.weakness(made["secret_key"]) is None and made["metrics_token"]
    path = tmp_path / "one" / "secrets.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert dev_secrets(tmp_path / "one") == made  # a restart keeps sessions and links valid
    assert dev_secrets(tmp_path / "two")["secret_key"] != made["secret_key"]
