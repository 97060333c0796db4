"""A/B tests: the test share split evenly, the winner by the metric after the wait, the
rest sent only the winner, every recipient exactly one message."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from mailer.campaign.ab_tests import choose
from mailer.campaign.schemas import VariantOut
from tests import factories
from tests.engagement.conftest import CHROME, click_event, deliver, delivery_event, rows

SUBJECTS = ["Variant one", "Variant two", "Variant three"]


def _variant(n: int, delivered: int, human_clicked: int) -> VariantOut:
    return VariantOut(
        variant=n,
        subject=None,
        template_version=None,
        from_address=None,
        delivered=delivered,
        sent=delivered,
        human_clicked=human_clicked,
        human_opened=human_clicked,
        clicks=human_clicked,
    )


def test_the_decision_rules() -> None:
    found = [_variant(1, 200, 10), _variant(2, 200, 30), _variant(3, 200, 20)]
    assert choose(found, "human_clicks", 100) == (2, "metric")
    # a best value shared (all zero included): the lowest-numbered of the leaders
    assert choose([_variant(1, 200, 5), _variant(2, 200, 9), _variant(3, 200, 9)],
                  "human_clicks", 100) == (2, "tie")  # fmt: skip
    assert choose([_variant(1, 200, 0), _variant(2, 200, 0)], "clicks_per_delivered", 100) == (
        1,
        "tie",
    )
    # a variant under the minimum sample: the control (variant 1) is sent
    assert choose([_variant(1, 200, 5), _variant(2, 99, 50)], "human_opens", 100) == (
        1,
        "too_small_sample",
    )


async def test_ab_campaign_sends_the_winner_to_the_rest(
    client, admin, engine, sessionmaker, sns_signer, clean_standin, start_worker
) -> None:
    emails = await factories.contacts(client, admin, 24)
    campaign = await factories.campaign(
        client,
        admin,
        variants=[{"subject": s} for s in SUBJECTS],
        ab_test={
            "test_share": 0.5,
            "metric": "human_clicks",
            "wait_minutes": 0.25,
            "min_per_variant": 1,
        },
    )
    cid = campaign["id"]
    assert [v["subject"] for v in campaign["ab_test"]["variants"]] == SUBJECTS
    start_worker()
    assert (await client.post(f"/v1/campaigns/{cid}/send", headers=admin)).status_code == 202

    # the test share: 12 of 24, 4 per variant, each with its own subject; the rest waits
    clean_standin.control.wait_for_sent(12, timeout=30)
    tested = await rows(
        engine,
        "SELECT email, variant, ses_message_id FROM messages"
        " WHERE campaign_id = :c AND variant IS NOT NULL AND status = 'sent'",
        c=cid,
    )
    deadline = time.monotonic() + 30
    while len(tested) < 12 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        tested = await rows(
            engine,
            "SELECT email, variant, ses_message_id FROM messages"
            " WHERE campaign_id = :c AND variant IS NOT NULL AND status = 'sent'",
            c=cid,
        )
    assert Counter(r.variant for r in tested) == {1: 4, 2: 4, 3: 4}
    sent = clean_standin.control.messages()
    assert len(sent) == 12
    subject_of = {
        m["Destination"]["ToAddresses"][0]: m["Content"]["Simple"]["Subject"]["Data"] for m in sent
    }
    for r in tested:
        assert subject_of[r.email] == SUBJECTS[r.variant - 1]
    got = (await client.get(f"/v1/campaigns/{cid}", headers=admin)).json()
    assert got["status"] == "sending" and got["ab_test"]["winner"] is None
    assert got["stats"]["queued"] == 12

    # readers: variant 2 gets two human clicks, variant 1 one, variant 3 none
    t = datetime.now(UTC) - timedelta(minutes=30)
    by_variant: dict[int, list] = {1: [], 2: [], 3: []}
    for r in tested:
        by_variant[r.variant].append(r)
    events = [delivery_event(r.ses_message_id, r.email, t) for r in tested]
    events += [
        click_event(r.ses_message_id, r.email, t, 900, CHROME, "https://shop.example/")
        for r in by_variant[2][:2] + by_variant[1][:1]
    ]
    await deliver(client, sns_signer, sessionmaker, events)

    # after the wait: variant 2 wins on human clicks and goes to the other 12
    done = await factories.wait_for_status(client, admin, cid, {"completed"}, 90)
    assert (done["ab_test"]["winner"], done["ab_test"]["decision"]) == (2, "metric")
    sent = clean_standin.control.messages()
    per_recipient = Counter(m["Destination"]["ToAddresses"][0] for m in sent)
    assert set(per_recipient) == set(emails) and set(per_recipient.values()) == {1}
    tested_emails = {r.email for r in tested}
    rest = [m for m in sent if m["Destination"]["ToAddresses"][0] not in tested_emails]
    assert len(rest) == 12
    assert {m["Content"]["Simple"]["Subject"]["Data"] for m in rest} == {SUBJECTS[1]}

    variants = {v["variant"]: v for v in done["ab_test"]["variants"]}
    assert {n: v["recipients"] for n, v in variants.items()} == {1: 4, 2: 16, 3: 4}
    assert {n: v["human_clicked"] for n, v in variants.items()} == {1: 1, 2: 2, 3: 0}
    assert done["stats"]["sent"] == 24 and done["stats"]["queued"] == 0

    # decided: a pick now is a conflict
    late = await client.post(f"/v1/campaigns/{cid}/winner", headers=admin, json={"variant": 1})
    assert late.status_code == 409


async def test_the_user_picks_the_winner_of_a_manual_test(
    client, admin, engine, clean_standin, start_worker
) -> None:
    emails = await factories.contacts(client, admin, 10)
    campaign = await factories.campaign(
        client,
        admin,
        variants=[{"subject": s} for s in SUBJECTS[:2]],
        ab_test={"test_share": 0.2, "auto": False, "wait_minutes": 0},
    )
    cid = campaign["id"]
    early = await client.post(f"/v1/campaigns/{cid}/winner", headers=admin, json={"variant": 1})
    assert early.status_code == 409  # not started
    start_worker()
    assert (await client.post(f"/v1/campaigns/{cid}/send", headers=admin)).status_code == 202
    clean_standin.control.wait_for_sent(2, timeout=30)
    async with engine.connect() as conn:
        held = (
            await conn.execute(
                text("SELECT count(*) FROM messages WHERE campaign_id = :c AND variant IS NULL"),
                {"c": cid},
            )
        ).scalar_one()
    assert held == 8
    bad = await client.post(f"/v1/campaigns/{cid}/winner", headers=admin, json={"variant": 5})
    assert bad.status_code == 422
    r = await client.post(f"/v1/campaigns/{cid}/winner", headers=admin, json={"variant": 2})
    assert r.status_code == 202, r.text
    assert (r.json()["ab_test"]["winner"], r.json()["ab_test"]["decision"]) == (2, "picked")
    done = await factories.wait_for_status(client, admin, cid, {"completed"}, 60)
    per_recipient = Counter(
        m["Destination"]["ToAddresses"][0] for m in clean_standin.control.messages()
    )
    assert set(per_recipient) == set(emails) and set(per_recipient.values()) == {1}
    assert done["stats"]["sent"] == 10


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"variants": [{"subject": "only one"}]}, ["body", "variants"]),
        ({"ab_test": {"test_share": 0.2}}, ["body", "ab_test"]),
        ({"variants": [{}, {"template_version": 9}]}, ["body", "variants", 1, "template_version"]),
        ({"variants": [{}, {"subject": "{{ oops"}]}, ["body", "variants", 1, "subject"]),
    ],
)
async def test_bad_variants_are_422_naming_the_field(client, admin, body, path) -> None:
    template = await factories.template(client, admin)
    segment = await factories.segment(client, admin)
    r = await client.post(
        "/v1/campaigns",
        headers=admin,
        json={
            "name": "ab",
            "template_id": template["id"],
            "segment_id": segment["id"],
            "from_address": "news@mailer.test",
            **body,
        },
    )
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"][0]["path"][: len(path)] == path
