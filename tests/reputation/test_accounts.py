"""SES account state per region: polled by the worker, stored, fed to the limiter; a
configured rate override wins over SES's MaxSendRate."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from mailer.metrics import exposition


def _limiter_rate(metrics_dir: Path) -> float | None:
    for family in text_string_to_metric_families(exposition(metrics_dir, []).decode()):
        for s in family.samples:
            if s.name == "mailer_rate_limit_per_second" and s.labels["region"] == "us-east-1":
                return s.value
    return None


async def _stored_rate(engine) -> float | None:  # type: ignore[no-untyped-def]
    async with engine.connect() as conn:
        return (
            await conn.execute(
                text("SELECT max_send_rate FROM region_accounts WHERE region = 'us-east-1'")
            )
        ).scalar()


async def _until(predicate, within: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within
    while not await predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.1)


async def test_override_wins_over_getaccount(engine, clean_standin, start_worker, tmp_path):  # type: ignore[no-untyped-def]
    clean_standin.control.set_rates({"us-east-1": 80})
    start_worker(
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path),
        MAILER_REGIONS="us-east-1=150",
        MAILER_ACCOUNT_POLL_SECONDS="0.3",
    )

    async def stored(rate: float) -> bool:
        return await _stored_rate(engine) == rate

    await _until(lambda: stored(80))
    assert _limiter_rate(tmp_path) == 150
    clean_standin.control.set_rates({"us-east-1": 60})
    await _until(lambda: stored(60))
    assert _limiter_rate(tmp_path) == 150


async def test_without_override_the_limiter_follows_ses(
    engine,
    clean_standin,
    start_worker,  # type: ignore[no-untyped-def]
    tmp_path,
):
    clean_standin.control.set_rates({"us-east-1": 80})
    start_worker(
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path),
        MAILER_REGIONS="us-east-1",
        MAILER_ACCOUNT_POLL_SECONDS="0.3",
    )

    async def limiter(rate: float) -> bool:
        return _limiter_rate(tmp_path) == rate

    await _until(lambda: limiter(80))
    clean_standin.control.set_rates({"us-east-1": 60})
    await _until(lambda: limiter(60))
    assert await _stored_rate(engine) == 60
