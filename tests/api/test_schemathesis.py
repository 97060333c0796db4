"""schemathesis over the OpenAPI schema of a real ``mailer api`` with an admin key (issue
17): no server error, every answer documented with the schema it has. The checks and the
key's variable are in ``schemathesis.toml``; ``.ci/run`` runs the same for minutes, this
test over a few examples per route so that a developer sees a failure without it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mailer.config import Settings
from tests.fixtures.api import free_port
from tests.fixtures.workers import ROOT, _die_with_parent, worker_env

SCHEMATHESIS = shutil.which("st") or shutil.which("schemathesis")


@pytest.fixture
def api_url(settings: Settings, admin_key: str, tmp_path: Path) -> Iterator[str]:
    """A ``mailer api`` process on the test database (the admin key made first)."""
    port = free_port()
    # the API itself reaches no SES: a closed local port, should any route try
    env = worker_env(settings, "http://127.0.0.1:9")
    log = (tmp_path / "api.log").open("wb")
    process = subprocess.Popen(  # noqa: S603 - our own console script
        [sys.executable, "-m", "mailer.cli", "api", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=_die_with_parent,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (tmp_path / "api.log").read_text()[-3000:]
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "mailer api did not answer /healthz"
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(10)
        log.close()


@pytest.mark.skipif(SCHEMATHESIS is None, reason="schemathesis comes with the test extra")
def test_schemathesis_finds_no_server_error_and_no_undocumented_answer(
    api_url: str, admin_key: str
) -> None:
    assert SCHEMATHESIS is not None
    result = subprocess.run(  # noqa: S603 - the test extra's own console script
        [
            SCHEMATHESIS,
            "run",
            f"{api_url}/openapi.json",
            "--max-examples",
            "3",
            "--seed",
            "17",
            "--no-color",
        ],
        env={**os.environ, "MAILER_FUZZ_KEY": admin_key},
        cwd=ROOT,  # where schemathesis.toml is
        capture_output=True,
        text=True,
        timeout=900,
    )
    out = result.stdout + result.stderr
    assert "Configuration:" in out and "schemathesis.toml" in out, out[-3000:]
    assert result.returncode == 0, out[-8000:]
