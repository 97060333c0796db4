"""Helpers for campaign-engine tests with real worker processes.

``seed_contacts`` inserts contacts in one statement (hundreds in milliseconds, where the
API would take seconds); ``@pytest.mark.regions("us-east-1=100", "eu-west-1=100")`` gives
the test an API (``app``/``client``) configured with those regions.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from mailer.config import Settings
from mailer.local.standin_client import StandinControl
from tests import factories


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "regions(*specs): API regions for this test")


@pytest.fixture
async def app(
    request: pytest.FixtureRequest, settings: Settings, engine: AsyncEngine
) -> AsyncIterator[object]:
    """The API, with the regions of the test's ``regions`` marker when it has one."""
    from mailer.app import create_app

    marker = request.node.get_closest_marker("regions")
    app_settings = settings
    if marker is not None:
        spec = ",".join(marker.args)
        parsed = Settings(
            database_url=settings.database_url, redis_url=settings.redis_url, regions=spec
        )
        app_settings = settings.model_copy(
            update={"regions": parsed.regions, "region_rates": parsed.region_rates}
        )
    application = create_app(app_settings)
    async with application.router.lifespan_context(application):
        yield application


async def seed_contacts(
    engine: AsyncEngine,
    n: int,
    prefix: str = "user",
    attributes: Callable[[int], dict[str, Any]] | None = None,
) -> list[str]:
    """Insert ``n`` subscribed contacts ``{prefix}{i}@example.test`` in one statement."""
    emails = [f"{prefix}{i}@example.test" for i in range(n)]
    attrs = [
        json.dumps(attributes(i) if attributes else {"first_name": f"Name{i}"}) for i in range(n)
    ]
    async with engine.begin() as conn:
        await conn.execute(
            text("""
                INSERT INTO contacts (email, attributes)
                SELECT e, CAST(a AS jsonb)
                  FROM unnest(CAST(:emails AS text[]), CAST(:attrs AS text[])) AS t(e, a)
            """),
            {"emails": emails, "attrs": attrs},
        )
    return emails


def recipients(control: StandinControl) -> Counter[str]:
    """How many times the stand-in accepted mail for each address."""
    return Counter(m["Destination"]["ToAddresses"][0] for m in control.messages())


async def wait_sent(control: StandinControl, at_least: int, within: float = 30.0) -> int:
    """Poll the stand-in until it accepted ``at_least`` sends; the number seen."""
    deadline = time.monotonic() + within
    while True:
        seen = control.sent()
        if seen >= at_least:
            return seen
        if time.monotonic() > deadline:
            raise AssertionError(f"stand-in saw {seen} sends, wanted {at_least} in {within}s")
        await asyncio.sleep(0.02)


async def launch(client: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> dict:
    """Create a campaign to every contact and send it; the campaign as answered."""
    campaign = await factories.campaign(client, headers, **body)
    r = await client.post(f"/v1/campaigns/{campaign['id']}/send", headers=headers)
    assert r.status_code == 202, r.text
    return r.json()
