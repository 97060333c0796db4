"""Every metric family exists from start-up, with zero values for its known labels (an
alert on it sees 0, not "no data"), and the exposition passes ``promtool check metrics``."""

from __future__ import annotations

import os
import shutil
import subprocess

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import TEST_METRICS_TOKEN
from tests.fixtures.api import ApiProcess
from tests.fixtures.workers import worker_env

PROMTOOL = shutil.which("promtool")


def promtool_check(exposition: str) -> None:
    """``promtool check metrics`` (Debian's ``prometheus`` package) passes on ``exposition``."""
    if PROMTOOL is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing: .ci/run installs Debian's prometheus package")
        pytest.skip("promtool is missing: apt-get install -y prometheus")
    result = subprocess.run(  # noqa: S603 - a fixed tool
        [PROMTOOL, "check", "metrics"], input=exposition.encode(), capture_output=True
    )
    # promtool prints lint findings and exits non-zero on any of them
    assert result.returncode == 0, (result.stdout + result.stderr).decode()


@pytest.fixture
def fresh_api(settings, engine, tmp_path):  # type: ignore[no-untyped-def]
    env = worker_env(
        settings,
        "http://127.0.0.1:9",
        MAILER_REGIONS="us-east-1,eu-west-1",
        MAILER_METRICS_TOKEN=TEST_METRICS_TOKEN,
    )
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    api = ApiProcess(env, tmp_path / "api.log")
    yield api
    api.stop()


def test_families_are_there_at_zero_before_anything_happened(fresh_api) -> None:
    text = httpx.get(
        f"{fresh_api.url}/metrics",
        headers={"Authorization": f"Bearer {TEST_METRICS_TOKEN}"},
        timeout=10,
    ).text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }

    def zero(name: str, **labels: str) -> None:
        key = (name, tuple(sorted(labels.items())))
        assert key in samples, f"{name}{labels} missing from a fresh /metrics"
        assert samples[key] == 0.0

    for region in ("us-east-1", "eu-west-1"):
        zero("mailer_ses_errors_total", region=region, operation="SendEmail", code="")
        zero("mailer_ses_throttles_total", region=region)
        zero("mailer_rate_slots_total", region=region)
        for mail_class in ("transactional", "marketing"):
            zero("mailer_sends_total", mail_class=mail_class, region=region, outcome="sent")
    for mail_class in ("transactional", "marketing"):
        zero("mailer_auto_pauses_total", scope="campaign", mail_class=mail_class)
        zero("mailer_auto_pauses_total", scope="mail_class", mail_class=mail_class)
    promtool_check(text)
