"""A campaign's per-link, per-provider and per-10-minutes numbers, from the rollups the
events worker keeps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.engagement.conftest import (
    CHROME,
    IPHONE_MAIL,
    click_event,
    deliver,
    delivery_event,
    open_event,
)
from tests.fixtures.sns import ses_event
from tests.webhook.conftest import seed_sent

A, B, C = "https://shop.example/a", "https://shop.example/b", "https://shop.example/c"


async def _all(client, headers, path: str, limit: int = 2) -> list[dict]:
    """Every item of a paginated report, ``limit`` at a time (the cursors are followed)."""
    items: list[dict] = []
    cursor = None
    while True:
        params: dict = {"limit": limit} | ({"cursor": cursor} if cursor else {})
        r = await client.get(path, headers=headers, params=params)
        assert r.status_code == 200, r.text
        items += r.json()["items"]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            return items


async def test_links_count_clicks_clickers_and_human_clickers(
    client, admin, engine, sessionmaker, sns_signer
) -> None:
    emails = ["r1@example.com", "r2@example.com", "r3@example.com", "scan@corp.example"]
    campaign_id, ses = await seed_sent(client, admin, engine, emails)
    t = datetime.now(UTC) - timedelta(hours=2)
    r1, r2, r3, scan = emails
    await deliver(
        client,
        sns_signer,
        sessionmaker,
        [
            click_event(ses[r1], r1, t, 300, CHROME, A),
            click_event(ses[r1], r1, t, 900, CHROME, A),  # the same reader again
            click_event(ses[r1], r1, t, 1500, CHROME, B),
            click_event(ses[r2], r2, t, 400, IPHONE_MAIL, A),
            click_event(ses[r3], r3, t, 1, CHROME, C),  # a second after sending
            # a scanner: every link within a second
            click_event(ses[scan], scan, t, 20.0, CHROME, A),
            click_event(ses[scan], scan, t, 20.4, CHROME, B),
            click_event(ses[scan], scan, t, 20.8, CHROME, C),
        ],
    )
    links = await _all(client, admin, f"/v1/campaigns/{campaign_id}/links")
    assert [(x["link"], x["clicks"], x["clickers"], x["human_clickers"]) for x in links] == [
        (A, 4, 3, 2),
        (B, 2, 2, 1),
        (C, 2, 2, 0),
    ]
    assert links[0]["tags"] == {"samplekey0": ["samplevalue0"], "samplekey1": ["samplevalue1"]}

    missing = await client.get("/v1/campaigns/999999/links", headers=admin)
    assert missing.status_code == 404
    bad = await client.get(
        f"/v1/campaigns/{campaign_id}/links", headers=admin, params={"cursor": "!"}
    )
    assert bad.status_code == 422


async def test_providers_group_domains_and_count_each_message_once(
    client, admin, engine, sessionmaker, sns_signer
) -> None:
    emails = [
        "a@gmail.com",
        "b@googlemail.com",
        "c@gmail.com",
        "d@hotmail.com",
        "e@outlook.com",
        "f@yahoo.com",
        "g@aol.com",
        "h@icloud.com",
        "i@corp.example",
        "j@corp.example",
    ]
    campaign_id, ses = await seed_sent(client, admin, engine, emails)
    t = datetime.now(UTC) - timedelta(minutes=30)
    delivered = [e for e in emails if e not in ("c@gmail.com", "j@corp.example")]
    events = [delivery_event(ses[e], e, t) for e in delivered]
    events += [
        ses_event("Bounce", ses["c@gmail.com"], ["c@gmail.com"]),
        ses_event("Bounce", ses["j@corp.example"], ["j@corp.example"], bounce_type="Transient"),
        ses_event("Complaint", ses["d@hotmail.com"], ["d@hotmail.com"]),
        ses_event("DeliveryDelay", ses["f@yahoo.com"], ["f@yahoo.com"]),
        open_event(ses["a@gmail.com"], "a@gmail.com", t, 600, IPHONE_MAIL),
        open_event(ses["a@gmail.com"], "a@gmail.com", t, 700, IPHONE_MAIL),  # same message
        open_event(ses["b@googlemail.com"], "b@googlemail.com", t, 600, IPHONE_MAIL),
        open_event(ses["h@icloud.com"], "h@icloud.com", t, 90, "Mozilla/5.0"),
    ]
    await deliver(client, sns_signer, sessionmaker, events)
    # again: replays count nothing
    await deliver(client, sns_signer, sessionmaker, events)

    got = {
        p["provider"]: p
        for p in await _all(client, admin, f"/v1/campaigns/{campaign_id}/providers")
    }
    numbers = {
        name: (p["domains"], p["delivered"], p["bounced"], p["complained"], p["delayed"],
               p["opened"])
        for name, p in got.items()
    }  # fmt: skip
    assert numbers == {
        "Gmail": (2, 2, 1, 0, 0, 2),
        "Outlook": (2, 2, 0, 1, 0, 0),
        "Yahoo/AOL": (2, 2, 0, 0, 1, 0),
        "Apple iCloud": (1, 1, 0, 0, 0, 1),
        "corp.example": (1, 1, 1, 0, 0, 0),
    }
    assert got["Gmail"]["bounce_rate"] == 1 / 3
    assert got["Outlook"]["complaint_rate"] == 0.5

    r = await client.get("/v1/reputation", headers=admin)
    assert r.status_code == 200, r.text
    marketing = r.json()["providers"]["marketing"]
    day = {p["provider"]: p["delivered"] for p in marketing["24h"]}
    assert day["Gmail"] == 2 and day["corp.example"] == 1
    assert {p["provider"] for p in marketing["7d"]} == set(numbers)


async def test_timeline_counts_per_ten_minutes(
    client, admin, engine, sessionmaker, sns_signer
) -> None:
    emails = ["t1@example.com", "t2@example.com"]
    campaign_id, ses = await seed_sent(client, admin, engine, emails)
    base = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    await deliver(
        client,
        sns_signer,
        sessionmaker,
        [
            delivery_event(ses[emails[0]], emails[0], base),
            delivery_event(ses[emails[1]], emails[1], base),
            open_event(ses[emails[0]], emails[0], base, 60, IPHONE_MAIL),  # 09:01
            open_event(ses[emails[1]], emails[1], base, 590, IPHONE_MAIL),  # 09:09:50
            open_event(ses[emails[1]], emails[1], base, 1300, IPHONE_MAIL),  # 09:21:40
            click_event(ses[emails[1]], emails[1], base, 1320, CHROME, A),  # 09:22
        ],
    )
    buckets = await _all(client, admin, f"/v1/campaigns/{campaign_id}/timeline", limit=1)
    assert [(b["start"][11:16], b["delivered"], b["opens"], b["clicks"]) for b in buckets] == [
        ("09:00", 2, 2, 0),
        ("09:20", 0, 1, 1),
    ]


async def test_the_dashboard_shows_human_engagement_and_providers(
    client, admin, engine, sessionmaker, sns_signer, make_key
) -> None:
    emails = ["p1@gmail.com", "p2@yahoo.com"]
    campaign_id, ses = await seed_sent(client, admin, engine, emails)
    t = datetime.now(UTC) - timedelta(minutes=30)
    await deliver(
        client,
        sns_signer,
        sessionmaker,
        [
            *(delivery_event(ses[e], e, t) for e in emails),
            click_event(ses[emails[0]], emails[0], t, 600, CHROME, A),
        ],
    )
    page = await client.get("/dashboard/login")
    csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    key = await make_key("reputation", name="ops")
    assert (
        await client.post("/dashboard/login", data={"key": key, "csrf": csrf})
    ).status_code == 303
    html = (await client.get("/dashboard")).text
    row = html.split(f'id="campaign-{campaign_id}"', 1)[1].split("</tr>", 1)[0]
    assert '<td class="num opt human-opened">1 · 50.0 %' in row
    assert '<td class="num opt human-clicked">1 · 50.0 %' in row
    providers = html.split('id="providers"', 1)[1].split("</section>", 1)[0]
    assert "<td>Gmail</td>" in providers and "<td>Yahoo/AOL</td>" in providers
