"""Opens and clicks as AWS documents them: counts, uniques and human counts per the rules
of docs/engagement.md, whatever order and however often the events come."""

from __future__ import annotations

import pytest

from mailer.engagement.rules import user_agent_verdict
from tests.engagement.conftest import (
    APPLE_PROXY,
    CHROME,
    GMAIL_PROXY,
    IPHONE_MAIL,
    SCANNER,
    click_event,
    deliver,
    delivery_event,
    open_event,
    rows,
    sent_at,
)
from tests.webhook.conftest import seed_sent, snapshot, stats

READER, MPP, SCANNED, EARLY, SILENT = (
    "reader@example.com",
    "icloud-user@icloud.com",
    "scanned@corp.example",
    "early@example.com",
    "silent@example.com",
)
LINKS = ("https://shop.example/a", "https://shop.example/b", "https://shop.example/c")


@pytest.mark.parametrize(
    ("ua", "verdict"),
    [
        (IPHONE_MAIL, None),
        (CHROME, None),
        (GMAIL_PROXY, None),
        ("Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.4266)", None),
        (APPLE_PROXY, "apple_proxy"),
        ("", "no_human_ua"),
        (None, "no_human_ua"),
        (SCANNER, "no_human_ua"),
        ("python-requests/2.31.0", "no_human_ua"),
        ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "no_human_ua"),
    ],
)
def test_user_agent_rules(ua: object, verdict: str | None) -> None:
    assert user_agent_verdict(ua) == verdict


def _campaign_events(ses: dict[str, str]) -> list[dict]:
    t = sent_at()
    return [
        *(delivery_event(ses[e], e, t) for e in (READER, MPP, SCANNED, EARLY, SILENT)),
        # a reader: opens twice on the phone, clicks one link minutes later
        open_event(ses[READER], READER, t, 600, IPHONE_MAIL),
        open_event(ses[READER], READER, t, 3600, IPHONE_MAIL),
        click_event(ses[READER], READER, t, 620, CHROME, LINKS[0]),
        # Apple Mail Privacy Protection: the proxy fetches the images, nobody reads
        open_event(ses[MPP], MPP, t, 90, APPLE_PROXY),
        # a mail security gateway: opens with its own agent, follows every link at once
        # with a browser's user agent
        open_event(ses[SCANNED], SCANNED, t, 30, SCANNER),
        *(click_event(ses[SCANNED], SCANNED, t, 30 + i * 0.3, CHROME, link)
          for i, link in enumerate(LINKS)),
        # an open with a human agent, but 2 s after sending: a pre-fetch
        open_event(ses[EARLY], EARLY, t, 2, IPHONE_MAIL),
    ]  # fmt: skip


async def test_documented_events_give_the_documented_numbers(
    client, admin, engine, sessionmaker, sns_signer
) -> None:
    emails = [READER, MPP, SCANNED, EARLY, SILENT]
    campaign_id, ses = await seed_sent(client, admin, engine, emails)
    await deliver(client, sns_signer, sessionmaker, _campaign_events(ses))

    got = await stats(client, admin, campaign_id)
    assert {k: got[k] for k in ("delivered", "opened", "clicked")} == {
        "delivered": 5,
        "opened": 4,
        "clicked": 2,
    }
    assert {k: got[k] for k in ("unique_opened", "unique_clicked")} == {
        "unique_opened": 4,
        "unique_clicked": 2,
    }
    assert {k: got[k] for k in ("human_opened", "human_clicked")} == {
        "human_opened": 1,
        "human_clicked": 1,
    }
    assert got["unique_open_rate"] == pytest.approx(4 / 5)
    assert got["human_open_rate"] == pytest.approx(1 / 5)
    assert got["human_click_rate"] == pytest.approx(1 / 5)

    per_message = {
        r.email: r
        for r in await rows(
            engine,
            "SELECT m.email, e.* FROM message_engagement e JOIN messages m ON m.id = e.message_id",
        )
    }
    assert set(per_message) == {READER, MPP, SCANNED, EARLY}
    reader = per_message[READER]
    assert (reader.opens, reader.human_opens, reader.clicks, reader.human_clicks) == (2, 2, 1, 1)
    assert reader.first_open_at < reader.first_click_at
    assert (per_message[MPP].opens, per_message[MPP].human_opens) == (1, 0)
    scanned = per_message[SCANNED]
    assert (scanned.clicks, scanned.human_clicks, scanned.human_opens) == (3, 0, 0)
    assert (per_message[EARLY].opens, per_message[EARLY].human_opens) == (1, 0)

    # the raw events stay, each with the rule that flagged it
    verdicts = {
        (r.email, r.type, r.automated)
        for r in await rows(
            engine,
            "SELECT email, type, data->>'automated' AS automated FROM events"
            " WHERE type IN ('open', 'click')",
        )
    }
    assert verdicts == {
        (READER, "open", None),
        (READER, "click", None),
        (MPP, "open", "apple_proxy"),
        (SCANNED, "open", "no_human_ua"),
        (SCANNED, "click", None),  # human agent: it is the burst that gives it away
        (EARLY, "open", "too_fast"),
    }


async def test_a_replayed_event_changes_nothing(
    client, admin, engine, sessionmaker, sns_signer
) -> None:
    emails = [READER, MPP, SCANNED, EARLY, SILENT]
    campaign_id, ses = await seed_sent(client, admin, engine, emails)
    events = _campaign_events(ses)
    await deliver(client, sns_signer, sessionmaker, events)
    before = await snapshot(engine)
    engagement = await rows(engine, "SELECT * FROM message_engagement ORDER BY message_id")
    links = await rows(engine, "SELECT * FROM campaign_links ORDER BY link")
    # SNS delivering each again under a new MessageId: the same SES events
    await deliver(client, sns_signer, sessionmaker, events)
    after = await snapshot(engine)
    assert after["notifications"] > before["notifications"]
    assert {k: v for k, v in after.items() if k != "notifications"} == {
        k: v for k, v in before.items() if k != "notifications"
    }
    assert await rows(engine, "SELECT * FROM message_engagement ORDER BY message_id") == engagement
    assert await rows(engine, "SELECT * FROM campaign_links ORDER BY link") == links
    assert (await stats(client, admin, campaign_id))["human_clicked"] == 1


async def test_a_scanner_burst_split_over_batches_is_taken_back(
    client, admin, engine, sessionmaker, sns_signer
) -> None:
    """The first click looks human until the second link's click, a second later, comes
    in another batch: then both are the scanner's, and the counters go back."""
    campaign_id, ses = await seed_sent(client, admin, engine, [SCANNED])
    t = sent_at()
    first = click_event(ses[SCANNED], SCANNED, t, 40, CHROME, LINKS[0])
    await deliver(client, sns_signer, sessionmaker, [first])
    got = await stats(client, admin, campaign_id)
    assert (got["unique_clicked"], got["human_clicked"], got["human_opened"]) == (1, 1, 1)

    second = click_event(ses[SCANNED], SCANNED, t, 41, CHROME, LINKS[1])
    await deliver(client, sns_signer, sessionmaker, [second])
    got = await stats(client, admin, campaign_id)
    assert (got["unique_clicked"], got["human_clicked"], got["human_opened"]) == (1, 0, 0)
    links = {
        r.link: (r.clicks, r.clickers, r.human_clickers)
        for r in await rows(
            engine, "SELECT * FROM campaign_links WHERE campaign_id = :c", c=campaign_id
        )
    }
    assert links == {LINKS[0]: (1, 1, 0), LINKS[1]: (1, 1, 0)}


async def test_a_human_click_makes_a_human_open_behind_apple_proxy(
    client, admin, engine, sessionmaker, sns_signer
) -> None:
    campaign_id, ses = await seed_sent(client, admin, engine, [MPP])
    t = sent_at()
    await deliver(
        client,
        sns_signer,
        sessionmaker,
        [
            open_event(ses[MPP], MPP, t, 60, APPLE_PROXY),
            click_event(ses[MPP], MPP, t, 900, IPHONE_MAIL, LINKS[2]),
        ],
    )
    got = await stats(client, admin, campaign_id)
    assert (got["unique_opened"], got["human_opened"], got["human_clicked"]) == (1, 1, 1)
