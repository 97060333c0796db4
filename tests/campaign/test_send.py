"""A campaign goes from the API through a real worker to an HTTP SES endpoint."""

from __future__ import annotations

from tests import factories
from tests.campaign.invariants import assert_counters_add_up


async def test_campaign_to_n_contacts_makes_exactly_n_ses_calls(
    client, admin, engine, clean_standin, start_worker
):
    n = 40
    emails = await factories.contacts(client, admin, n)
    campaign = await factories.campaign(client, admin, name="Spring")
    worker = start_worker()

    r = await client.post(f"/v1/campaigns/{campaign['id']}/send", headers=admin)
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "sending"

    done = await factories.wait_for_status(client, admin, campaign["id"], {"completed"}, 60)
    assert done["stats"]["recipients"] == n
    assert done["stats"]["sent"] == n
    assert done["stats"]["failed"] == 0 and done["stats"]["resent"] == 0
    await assert_counters_add_up(engine, done["stats"], campaign["id"])

    sent = clean_standin.control.messages()
    assert len(sent) == n, worker.log()
    by_recipient = {m["Destination"]["ToAddresses"][0]: m for m in sent}
    assert set(by_recipient) == set(emails)

    messages = await factories.all_messages(client, admin, campaign["id"])
    assert {m["status"] for m in messages} == {"sent"}
    for message in messages:
        call = by_recipient[message["email"]]
        index = int(message["email"].removeprefix("user").split("@")[0])
        expected = f"Hello Name{index}" if index % 2 == 0 else "Hello there"
        simple = call["Content"]["Simple"]
        assert simple["Subject"]["Data"] == expected
        assert {t["Name"]: t["Value"] for t in call["EmailTags"]} == {
            "mail_class": "marketing",
            "campaign_id": str(campaign["id"]),
            "message_id": str(message["id"]),
        }
        assert call["MessageId"] == message["ses_message_id"]
        headers = {h["Name"]: h["Value"] for h in simple["Headers"]}
        assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert headers["List-Unsubscribe"].startswith("<http://mailer.test/unsubscribe/")
        assert call["ConfigurationSetName"] == "marketing"
