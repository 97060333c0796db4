"""Campaigns, segments and templates as full resources (issue 19): listed, drafts changed
and deleted, a segment or template deleted only when nothing needs it."""

from __future__ import annotations

from typing import get_args

from sqlalchemy import text

from mailer.models.campaign import CAMPAIGN_STATUSES
from mailer.types import CampaignStatus
from tests import factories


def test_the_status_filter_names_every_campaign_status() -> None:
    assert get_args(CampaignStatus) == CAMPAIGN_STATUSES


async def test_campaigns_are_listed_by_id_with_a_status_filter_and_a_cursor(client, admin):
    ids = [(await factories.campaign(client, admin, name=f"c{i}"))["id"] for i in range(5)]
    r = await client.post(f"/v1/campaigns/{ids[1]}/cancel", headers=admin)
    assert r.status_code == 200
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/campaigns", headers=admin, params=params)).json()
        seen += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids
    drafts = (await client.get("/v1/campaigns?status=draft", headers=admin)).json()
    assert [c["id"] for c in drafts["items"]] == [i for i in ids if i != ids[1]]
    assert all("stats" in c for c in drafts["items"])
    cancelled = (await client.get("/v1/campaigns?status=cancelled", headers=admin)).json()
    assert [c["id"] for c in cancelled["items"]] == [ids[1]]
    bad = await client.get("/v1/campaigns?status=bogus", headers=admin)
    assert bad.status_code == 422 and "error" in bad.json()


async def test_a_draft_is_changed_field_by_field_and_keeps_the_rest(client, admin):
    first = await factories.template(client, admin, name="first")
    r = await client.put(
        f"/v1/templates/{first['id']}",
        headers=admin,
        json={"subject": "v2 {{ contact.email }}", "html": factories.HTML},
    )
    assert r.status_code in (200, 201), r.text
    campaign = await factories.campaign(client, admin, template_id=first["id"])
    assert campaign["template_version"] == 2
    other_segment = await factories.segment(
        client, admin, {"field": "tags", "op": "contains", "value": "x"}
    )
    r = await client.patch(
        f"/v1/campaigns/{campaign['id']}",
        headers=admin,
        json={
            "name": "renamed",
            "template_version": 1,
            "segment_id": other_segment["id"],
            "from_address": "News <news@mailer.test>",
            "reply_to": "help@mailer.test",
            "send_at": "2030-01-01T10:00:00Z",
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["name"] == "renamed" and body["template_version"] == 1
    assert body["segment_id"] == other_segment["id"]
    assert body["from_address"] == "News <news@mailer.test>"
    assert body["reply_to"] == "help@mailer.test"
    assert body["send_at"].startswith("2030-01-01T10:00:00")
    assert body["mail_class"] == campaign["mail_class"] and body["status"] == "draft"
    # null removes the optional ones; what the body leaves out stays
    r = await client.patch(
        f"/v1/campaigns/{campaign['id']}", headers=admin, json={"reply_to": None, "send_at": None}
    )
    assert r.json()["reply_to"] is None and r.json()["send_at"] is None
    assert r.json()["name"] == "renamed" and r.json()["template_version"] == 1


async def test_bad_draft_changes_are_422s_that_change_nothing(client, admin):
    campaign = await factories.campaign(client, admin, name="keep")
    url = f"/v1/campaigns/{campaign['id']}"
    for body, path in (
        ({"template_version": 9}, "template_version"),
        ({"mail_class": "nope"}, "mail_class"),
        ({"regions": ["mars-1"]}, "regions"),
        ({"from_address": "not an address"}, "from_address"),
        ({"status": "sending"}, None),
    ):
        r = await client.patch(url, headers=admin, json={"name": "changed", **body})
        assert r.status_code == 422, (body, r.text)
        if path:
            assert path in r.json()["error"]["details"][0]["path"], r.text
    r = await client.patch(url, headers=admin, json={"segment_id": 999999})
    assert r.status_code == 422 and r.json()["error"]["details"][0]["path"] == [
        "body",
        "segment_id",
    ]
    r = await client.patch(url, headers=admin, json={"template_id": 999999})
    assert r.status_code == 422 and r.json()["error"]["details"][0]["path"] == [
        "body",
        "template_id",
    ]
    assert (await client.get(url, headers=admin)).json()["name"] == "keep"


async def test_only_drafts_are_changed_or_deleted(client, admin, engine):
    campaign = await factories.campaign(client, admin)
    url = f"/v1/campaigns/{campaign['id']}"
    assert (await client.post(f"{url}/cancel", headers=admin)).status_code == 200
    r = await client.patch(url, headers=admin, json={"name": "late"})
    assert r.status_code == 409 and "cancelled" in r.json()["error"]["message"]
    r = await client.delete(url, headers=admin)
    assert r.status_code == 409
    assert (await client.get(url, headers=admin)).json()["name"] != "late"

    draft = await factories.campaign(client, admin)
    r = await client.delete(f"/v1/campaigns/{draft['id']}", headers=admin)
    assert r.status_code == 204
    assert (await client.get(f"/v1/campaigns/{draft['id']}", headers=admin)).status_code == 404
    assert (await client.delete(f"/v1/campaigns/{draft['id']}", headers=admin)).status_code == 404
    async with engine.connect() as conn:
        stats = await conn.scalar(
            text("SELECT count(*) FROM campaign_stats WHERE campaign_id = :id"), {"id": draft["id"]}
        )
    assert stats == 0


async def test_a_segment_in_use_is_a_409_naming_the_campaigns(client, admin):
    segment = await factories.segment(client, admin)
    one = await factories.campaign(client, admin, segment_id=segment["id"])
    two = await factories.campaign(client, admin, segment_id=segment["id"])
    r = await client.delete(f"/v1/segments/{segment['id']}", headers=admin)
    assert r.status_code == 409, r.text
    assert r.json()["error"]["details"] == [{"campaign_ids": [one["id"], two["id"]]}]
    assert (await client.get(f"/v1/segments/{segment['id']}", headers=admin)).status_code == 200
    for c in (one, two):
        assert (await client.delete(f"/v1/campaigns/{c['id']}", headers=admin)).status_code == 204
    assert (await client.delete(f"/v1/segments/{segment['id']}", headers=admin)).status_code == 204
    assert (await client.get(f"/v1/segments/{segment['id']}", headers=admin)).status_code == 404
    assert (await client.delete(f"/v1/segments/{segment['id']}", headers=admin)).status_code == 404


async def test_a_template_in_use_is_a_409_and_an_unused_one_goes_with_its_versions(
    client, admin, make_key, engine
):
    used = await factories.template(client, admin, name="used")
    campaign = await factories.campaign(client, admin, template_id=used["id"])
    r = await client.delete(f"/v1/templates/{used['id']}", headers=admin)
    assert r.status_code == 409 and str(campaign["id"]) in r.json()["error"]["message"]

    waiting = await factories.template(client, admin, name="waiting", html="<p>Hi</p>")
    tx = {"Authorization": f"Bearer {await make_key('transactional')}"}
    r = await client.post(
        "/v1/messages",
        headers=tx,
        json={
            "to": "a@example.test",
            "from_address": "x@mailer.test",
            "template_id": waiting["id"],
        },
    )
    assert r.status_code == 202, r.text  # no worker: it stays queued
    r = await client.delete(f"/v1/templates/{waiting['id']}", headers=admin)
    assert r.status_code == 409 and "not sent yet" in r.json()["error"]["message"]

    unused = await factories.template(client, admin, name="unused")
    r = await client.delete(f"/v1/templates/{unused['id']}", headers=admin)
    assert r.status_code == 204
    assert (await client.get(f"/v1/templates/{unused['id']}", headers=admin)).status_code == 404
    async with engine.connect() as conn:
        left = await conn.scalar(
            text("SELECT count(*) FROM template_versions WHERE template_id = :id"),
            {"id": unused["id"]},
        )
    assert left == 0


async def test_send_at_in_the_past_is_a_422_at_create_and_update(client, admin):
    r = await client.post(
        "/v1/campaigns",
        headers=admin,
        json={
            "name": "late",
            "template_id": (await factories.template(client, admin))["id"],
            "segment_id": (await factories.segment(client, admin))["id"],
            "from_address": "news@mailer.test",
            "send_at": "2020-01-01T00:00:00Z",
        },
    )
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"][0]["path"] == ["body", "send_at"]
    assert "has passed" in r.json()["error"]["message"]
    assert (await client.get("/v1/campaigns", headers=admin)).json()["items"] == []
    draft = await factories.campaign(client, admin)
    r = await client.patch(
        f"/v1/campaigns/{draft['id']}", headers=admin, json={"send_at": "2020-01-01T00:00:00"}
    )
    assert r.status_code == 422


async def test_a_campaign_message_is_readable_with_its_bounce(client, admin, make_key, engine):
    campaign = await factories.campaign(client, admin)
    other = await factories.campaign(client, admin)
    async with engine.begin() as conn:
        mid = await conn.scalar(
            text(
                "INSERT INTO messages (campaign_id, email, mail_class, status, ses_message_id)"
                " VALUES (:c, 'gone@example.test', 'marketing', 'bounced', 'ses-1') RETURNING id"
            ),
            {"c": campaign["id"]},
        )
        await conn.execute(
            text(
                "INSERT INTO events (message_id, campaign_id, email, type, subtype, occurred_at,"
                " data, dedup_key) VALUES (:m, :c, 'gone@example.test', 'bounce', 'Permanent',"
                " now(), CAST(:d AS jsonb), 'k1')"
            ),
            {"m": mid, "c": campaign["id"], "d": '{"diagnostic": "550 5.1.1 user unknown"}'},
        )
    r = await client.get(f"/v1/campaigns/{campaign['id']}/messages/{mid}", headers=admin)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "bounced" and body["to"] == "gone@example.test"
    [event] = body["events"]
    assert event["type"] == "bounce" and event["subtype"] == "Permanent"
    assert event["data"]["diagnostic"] == "550 5.1.1 user unknown"
    # not under another campaign, and not on the transactional route
    r = await client.get(f"/v1/campaigns/{other['id']}/messages/{mid}", headers=admin)
    assert r.status_code == 404
    tx = {"Authorization": f"Bearer {await make_key('transactional')}"}
    assert (await client.get(f"/v1/messages/{mid}", headers=tx)).status_code == 404
