"""Custom recipient domains grouped into mailbox providers by their MX (issue 24): a
periodic job looks each recent domain up (on a DNS server on loopback,
``tests/fixtures/dns``), and the campaign's providers and ``GET /v1/reputation`` show a
domain hosted by Google Workspace under Gmail, by Microsoft 365 under Outlook."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from mailer.config import Settings
from mailer.engagement.mx import provider_of_host
from mailer.engagement.tasks import refresh_domain_mx
from tests.engagement.conftest import deliver, delivery_event, rows
from tests.fixtures.dns import DnsStub
from tests.webhook.conftest import seed_sent

GOOGLE = [(1, "aspmx.l.google.com"), (5, "alt1.aspmx.l.google.com")]


@pytest.fixture
def stub() -> Iterator[DnsStub]:
    with DnsStub() as server:
        yield server


@pytest.fixture
def ctx(settings: Settings, sessionmaker, stub: DnsStub) -> dict[str, Any]:
    """The job's context, its look-ups sent to the stub."""
    return {
        "settings": settings.model_copy(update={"dns_resolvers": [stub.address]}),
        "sessionmaker": sessionmaker,
    }


async def _delivered(client, admin, engine, sessionmaker, sns_signer, emails) -> int:
    campaign_id, ses = await seed_sent(client, admin, engine, emails)
    t = datetime.now(UTC) - timedelta(minutes=30)
    await deliver(client, sns_signer, sessionmaker, [delivery_event(ses[e], e, t) for e in emails])
    return campaign_id


async def _providers(client, admin, campaign_id: int) -> dict[str, tuple[int, int]]:
    r = await client.get(f"/v1/campaigns/{campaign_id}/providers", headers=admin)
    assert r.status_code == 200, r.text
    return {p["provider"]: (p["domains"], p["delivered"]) for p in r.json()["items"]}


async def _age(engine, domain: str, by: timedelta) -> None:
    """As if ``domain`` was looked up ``by`` earlier than it was."""
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE domain_mx SET looked_up_at = looked_up_at - CAST(:by AS interval)"
                " WHERE domain = :d"
            ),
            {"by": by, "d": domain},
        )


async def test_custom_domains_are_grouped_by_their_mx(
    client, admin, engine, sessionmaker, sns_signer, stub, ctx, make_key
) -> None:
    stub.mx["workspace.example"] = GOOGLE
    stub.mx["m365.example"] = [(0, "m365-example.mail.protection.outlook.com")]
    stub.mx["own.example"] = [(10, "mx.own.example")]
    stub.mx["nomail.example"] = [(0, ".")]  # RFC 7505's null MX
    emails = [
        "a@gmail.com",
        "w1@workspace.example",
        "w2@workspace.example",
        "m@m365.example",
        "o@own.example",
        "n@nomail.example",
        "x@nxdomain.example",
    ]
    campaign_id = await _delivered(client, admin, engine, sessionmaker, sns_signer, emails)
    # before the job has looked them up, every custom domain shows under its own name
    assert await _providers(client, admin, campaign_id) == {
        "Gmail": (1, 1),
        "workspace.example": (1, 2),
        "m365.example": (1, 1),
        "own.example": (1, 1),
        "nomail.example": (1, 1),
        "nxdomain.example": (1, 1),
    }

    assert await refresh_domain_mx(ctx) == 5
    # each custom domain is asked once; the fixed table's domains never
    assert sorted(stub.questions) == [
        "m365.example",
        "nomail.example",
        "nxdomain.example",
        "own.example",
        "workspace.example",
    ]
    assert await _providers(client, admin, campaign_id) == {
        "Gmail": (2, 3),
        "Outlook": (1, 1),
        "own.example": (1, 1),
        "nomail.example": (1, 1),
        "nxdomain.example": (1, 1),
    }
    stored = {r.domain: r.mx for r in await rows(engine, "SELECT domain, mx FROM domain_mx")}
    assert stored["workspace.example"] == "aspmx.l.google.com"  # the preferred host
    assert stored["nomail.example"] == "." and stored["nxdomain.example"] is None

    r = await client.get("/v1/reputation", headers=admin)
    assert r.status_code == 200, r.text
    marketing = r.json()["providers"]["marketing"]
    for window in ("24h", "7d"):
        got = {p["provider"]: (p["domains"], p["delivered"]) for p in marketing[window]}
        assert got["Gmail"] == (2, 3) and got["Outlook"] == (1, 1)
        assert "workspace.example" not in got and got["own.example"] == (1, 1)

    # the dashboard shows the same rows
    page = await client.get("/dashboard/login")
    csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    key = await make_key("reputation", name="ops")
    login = await client.post("/dashboard/login", data={"key": key, "csrf": csrf})
    assert login.status_code == 303
    html = (await client.get("/dashboard")).text
    providers = html.split('id="providers"', 1)[1].split("</section>", 1)[0]
    assert "<td>Outlook</td>" in providers and "<td>own.example</td>" in providers
    assert "m365.example" not in providers and "workspace.example" not in providers


async def test_a_failed_look_up_keeps_the_report_and_is_tried_again_later(
    client, admin, engine, sessionmaker, sns_signer, stub, ctx
) -> None:
    stub.failing.add("broken.example")  # SERVFAIL
    too_long = "x" * 64 + ".example"  # a label DNS cannot carry
    campaign_id = await _delivered(
        client, admin, engine, sessionmaker, sns_signer, ["b@broken.example", f"c@{too_long}"]
    )
    assert await refresh_domain_mx(ctx) == 2
    assert await _providers(client, admin, campaign_id) == {
        "broken.example": (1, 1),
        too_long: (1, 1),
    }
    found = {
        r.domain: (r.provider, r.failed) for r in await rows(engine, "SELECT * FROM domain_mx")
    }
    assert found == {"broken.example": (None, True), too_long: (None, True)}

    # its DNS answers again: not asked before the retry is due, then asked and grouped
    stub.failing.clear()
    stub.mx["broken.example"] = GOOGLE
    assert await refresh_domain_mx(ctx) == 0
    await _age(engine, "broken.example", timedelta(minutes=61))
    assert await refresh_domain_mx(ctx) == 1
    assert stub.questions == ["broken.example", "broken.example"]
    assert (await _providers(client, admin, campaign_id))["Gmail"] == (1, 1)

    # a later failure keeps the last answer, marked to be tried again sooner
    stub.failing.add("broken.example")
    await _age(engine, "broken.example", timedelta(days=8))
    assert await refresh_domain_mx(ctx) == 1
    [row] = await rows(
        engine, "SELECT provider, mx, failed FROM domain_mx WHERE domain = 'broken.example'"
    )
    assert (row.provider, row.mx, row.failed) == ("Gmail", "aspmx.l.google.com", True)
    assert (await _providers(client, admin, campaign_id))["Gmail"] == (1, 1)


async def test_each_domain_is_looked_up_once_within_its_ttl(
    client, admin, engine, sessionmaker, sns_signer, stub, ctx
) -> None:
    stub.mx["corp.example"] = [(10, "mx.corp.example")]
    await _delivered(
        client, admin, engine, sessionmaker, sns_signer, ["a@corp.example", "b@corp.example"]
    )
    assert await refresh_domain_mx(ctx) == 1
    assert await refresh_domain_mx(ctx) == 0
    await _age(engine, "corp.example", timedelta(days=6, hours=23))
    assert await refresh_domain_mx(ctx) == 0
    assert stub.questions == ["corp.example"]
    await _age(engine, "corp.example", timedelta(hours=2))  # past 7 days
    assert await refresh_domain_mx(ctx) == 1
    assert stub.questions == ["corp.example", "corp.example"]


def test_mx_hosts_match_whole_labels() -> None:
    assert provider_of_host("aspmx.l.google.com") == "Gmail"
    assert provider_of_host("ALT1.ASPMX.L.GOOGLE.COM.") == "Gmail"
    assert provider_of_host("smtp.googlemail.com") == "Gmail"
    assert provider_of_host("corp-com.mail.protection.outlook.com") == "Outlook"
    assert provider_of_host("mx-biz.mail.am0.yahoodns.net") == "Yahoo/AOL"
    assert provider_of_host("mx01.mail.icloud.com") == "Apple iCloud"
    assert provider_of_host("google.com.evil.example") is None
    assert provider_of_host("notgoogle.com") is None
    assert provider_of_host("icloud.com") is None  # only its mail hosts
    assert provider_of_host(".") is None
