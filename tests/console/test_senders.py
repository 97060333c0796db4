"""The campaign wizard offers From and Reply-To from the SES account's verified identities
(ListEmailIdentities on the local emulator), kept for a few minutes; when SES cannot be
asked, the page still answers at once and any typed address is taken."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator

import boto3
import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from mailer.config import Settings
from mailer.ses import identities
from tests import factories
from tests.console.helpers import make_person, session_csrf, sign_in
from tests.fixtures.standin import StandinProcess


def _sesv2(url: str):  # type: ignore[no-untyped-def]
    return boto3.client(
        "sesv2",
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106
    )


def _offered(html: str) -> list[str]:
    datalist = re.search(r'<datalist id="senders">(.*?)</datalist>', html, re.S)
    assert datalist is not None, html
    return re.findall(r'<option value="([^"]+)"', datalist.group(1))


@pytest.fixture
async def emulated(
    settings: Settings, engine: AsyncEngine, clean_standin: StandinProcess
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app whose SES is the emulator (reset: no identity yet)."""
    from mailer.app import create_app

    identities.forget()
    app = create_app(settings.model_copy(update={"ses_endpoint_url": clean_standin.url}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://mailer.test") as c:
            yield c
    identities.forget()


async def test_the_wizard_offers_the_verified_identities(  # type: ignore[no-untyped-def]
    emulated, clean_standin, sessionmaker, settings
) -> None:
    ses = _sesv2(clean_standin.url)
    ses.create_email_identity(EmailIdentity="acme.test")
    ses.create_email_identity(EmailIdentity="news@other.test")
    await make_person(sessionmaker, settings, "mo@example.test", "marketer")
    assert (await sign_in(emulated, "mo@example.test")).status_code == 303

    page = await emulated.get("/console/campaigns/new")
    assert page.status_code == 200
    # addresses first, a domain as "any address at it"; Reply-To offers the same list
    assert _offered(page.text) == ["news@other.test", "@acme.test"]
    assert 'value="news@other.test">' in page.text  # From starts with the first address
    assert 'id="reply_to" name="reply_to" type="text" list="senders"' in page.text
    assert "acme.test (any address)" in page.text

    # listed once for a few minutes: a new identity shows after the cache is dropped
    ses.create_email_identity(EmailIdentity="hello@acme.test")
    assert "hello@acme.test" not in _offered((await emulated.get("/console/campaigns/new")).text)
    identities.forget()
    offered = _offered((await emulated.get("/console/campaigns/new")).text)
    assert offered == ["hello@acme.test", "news@other.test", "@acme.test"]


async def test_pending_identities_are_not_offered(  # type: ignore[no-untyped-def]
    emulated, clean_standin, sessionmaker, settings
) -> None:
    async with httpx.AsyncClient(base_url=clean_standin.url) as control:
        (await control.post("/_standin/account", json={"verify": False})).raise_for_status()
    _sesv2(clean_standin.url).create_email_identity(EmailIdentity="pending.test")
    await make_person(sessionmaker, settings, "mo@example.test", "marketer")
    await sign_in(emulated, "mo@example.test")
    page = (await emulated.get("/console/campaigns/new")).text
    assert _offered(page) == []
    assert "SES lists no verified identity" in page


async def test_without_ses_the_wizard_answers_and_takes_a_typed_sender(  # type: ignore[no-untyped-def]
    client, admin, sessionmaker, settings
) -> None:
    # the tests' settings name an SES endpoint where nothing answers
    identities.forget()
    await make_person(sessionmaker, settings, "mo@example.test", "marketer")
    await sign_in(client, "mo@example.test")
    started = time.monotonic()
    page = await client.get("/console/campaigns/new")
    assert page.status_code == 200
    assert time.monotonic() - started < identities.DEADLINE_SECONDS + 1
    assert "SES could not be asked" in page.text and _offered(page.text) == []
    assert '<input id="from_address" name="from_address" type="text" required' in page.text

    template = await factories.template(client, admin, html="<p>x</p>" + factories.FOOTER)
    segment = await factories.segment(client, admin)
    r = await client.post(
        "/console/campaigns",
        data={
            "csrf": await session_csrf(client),
            "name": "Typed",
            "template_id": str(template["id"]),
            "segment_id": str(segment["id"]),
            "from_address": "Typed <typed@anywhere.test>",
            "mail_class": "marketing",
        },
    )
    assert r.status_code == 303, r.text
    campaign_id = r.headers["location"].rsplit("/", 1)[1]
    got = (await client.get(f"/v1/campaigns/{campaign_id}", headers=admin)).json()
    assert got["from_address"] == "Typed <typed@anywhere.test>"
