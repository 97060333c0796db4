"""Alignment at the door (issue 21): a campaign or message from a domain whose SES identity
has no DKIM ``SUCCESS`` is refused with a 422 naming ``mailer ses setup --domain …``,
when SES answers ``GetEmailIdentity`` (here the project's emulator, whose identities are
what ``mailer ses setup`` makes); an account that cannot be asked blocks nothing."""

from __future__ import annotations

from typing import Any

import boto3
import httpx
from sqlalchemy import text

from mailer.config import Settings
from tests import factories
from tests.console.helpers import make_person, session_csrf, sign_in
from tests.fixtures.api import api_client

GOOD = "news@aligned.example"  # its domain has an identity with DKIM SUCCESS
BAD = "News <news@unaligned.example>"  # no identity at all


def ses(url: str) -> Any:
    return boto3.client(
        "sesv2",
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def _refused(r: httpx.Response, domain: str = "unaligned.example") -> dict[str, Any]:
    assert r.status_code == 422, r.text
    error: dict[str, Any] = r.json()["error"]
    assert error["code"] == "sender_not_verified"
    assert f"`mailer ses setup --domain {domain} --region us-east-1`" in error["message"]
    return error


async def _admin(client: httpx.AsyncClient) -> dict[str, str]:
    from mailer.auth.service import create_key
    from mailer.db import transaction

    app = client._transport.app  # type: ignore[attr-defined]  # noqa: SLF001
    async with transaction(app.state.sessionmaker) as session:
        _, raw = await create_key(session, "admin", ["admin"])
    return {"Authorization": f"Bearer {raw}"}


async def _count(engine, table: str) -> int:  # type: ignore[no-untyped-def]
    async with engine.connect() as conn:
        return int((await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())


async def test_campaigns_and_messages_from_a_domain_without_dkim_are_refused(
    api_with, clean_standin, engine
) -> None:
    ses(clean_standin.url).create_email_identity(EmailIdentity="aligned.example")
    async with api_with(ses_endpoint_url=clean_standin.url) as client:
        admin = await _admin(client)
        template = await factories.template(client, admin)
        segment = await factories.segment(client, admin)
        body = {"name": "n", "template_id": template["id"], "segment_id": segment["id"]}

        r = await client.post("/v1/campaigns", headers=admin, json={**body, "from_address": BAD})
        error = _refused(r)
        assert error["details"] == [
            {
                "path": ["body", "from_address"],
                "message": error["message"],
                "domain": "unaligned.example",
                "region": "us-east-1",
                "identity": "no SES identity",
                "fix": "mailer ses setup --domain unaligned.example --region us-east-1",
            }
        ]
        assert await _count(engine, "campaigns") == 0
        r = await client.post("/v1/campaigns", headers=admin, json={**body, "from_address": GOOD})
        assert r.status_code == 201, r.text

        message = {"to": "ann@example.com", "subject": "Hi", "html": "<p>Hi</p>"}
        # the lean accept path (mailer.message.endpoints.MessagesEndpoint)
        _refused(
            await client.post("/v1/messages", headers=admin, json={**message, "from_address": BAD})
        )
        r = await client.post("/v1/messages", headers=admin, json={**message, "from_address": GOOD})
        assert r.status_code == 202, r.text
        # the batch: each item on its own
        r = await client.post(
            "/v1/messages/batch",
            headers=admin,
            json={"messages": [{**message, "from_address": a} for a in (BAD, GOOD)]},
        )
        items = r.json()["items"]
        assert [i["status_code"] for i in items] == [422, 202]
        assert items[0]["error"]["code"] == "sender_not_verified"
        assert items[0]["error"]["details"][0]["path"] == ["body", "messages", 0, "from_address"]
        assert await _count(engine, "messages") == 2
        # one read per domain: the answers are kept (off the accept path once seen)
        senders = client._transport.app.state.senders  # type: ignore[attr-defined]  # noqa: SLF001
        assert senders.reads == 2


async def test_a_subdomain_is_aligned_through_its_parent(api_with, clean_standin) -> None:
    ses(clean_standin.url).create_email_identity(EmailIdentity="aligned.example")
    async with api_with(ses_endpoint_url=clean_standin.url) as client:
        admin = await _admin(client)
        campaign = await factories.campaign(client, admin, from_address="a@news.aligned.example")
        assert campaign["status"] == "draft"


async def test_a_pending_identity_is_refused_until_its_dns_is_published(
    api_with, clean_standin
) -> None:
    account = f"{clean_standin.url}/_standin/account"
    async with httpx.AsyncClient() as http:  # DKIM PENDING until the records are seen
        await http.post(account, json={"verify": False})
    ses(clean_standin.url).create_email_identity(EmailIdentity="unaligned.example")
    async with api_with(ses_endpoint_url=clean_standin.url, sender_check_seconds=1) as client:
        admin = await _admin(client)
        template = await factories.template(client, admin)
        segment = await factories.segment(client, admin)
        body = {
            "name": "n",
            "template_id": template["id"],
            "segment_id": segment["id"],
            "from_address": BAD,
        }
        error = _refused(await client.post("/v1/campaigns", headers=admin, json=body))
        assert error["details"][0]["identity"] == "identity unaligned.example: DKIM PENDING"
        async with httpx.AsyncClient() as http:
            await http.post(account, json={"verify": True})
        # a refusal is read again after MAILER_SENDER_CHECK_SECONDS (at most 30 s)
        senders = client._transport.app.state.senders  # type: ignore[attr-defined]  # noqa: SLF001
        answer, read_at = senders._answers[("us-east-1", "unaligned.example")]  # noqa: SLF001
        senders._answers[("us-east-1", "unaligned.example")] = (answer, read_at - 1.1)  # noqa: SLF001
        r = await client.post("/v1/campaigns", headers=admin, json=body)
        assert r.status_code == 201, r.text


async def test_launch_refuses_a_sender_whose_identity_went_away(api_with, clean_standin) -> None:
    client_ses = ses(clean_standin.url)
    client_ses.create_email_identity(EmailIdentity="aligned.example")
    async with api_with(ses_endpoint_url=clean_standin.url) as client:
        admin = await _admin(client)
        campaign = await factories.campaign(client, admin, from_address=GOOD)
        client_ses.delete_email_identity(EmailIdentity="aligned.example")
        client._transport.app.state.senders.forget()  # type: ignore[attr-defined]  # noqa: SLF001
        r = await client.post(f"/v1/campaigns/{campaign['id']}/send", headers=admin)
        _refused(r, "aligned.example")
        assert (await client.get(f"/v1/campaigns/{campaign['id']}", headers=admin)).json()[
            "status"
        ] == "draft"
        # a change of sender is checked too
        r = await client.patch(
            f"/v1/campaigns/{campaign['id']}", headers=admin, json={"from_address": BAD}
        )
        _refused(r)


async def test_an_account_that_cannot_be_asked_blocks_nothing(client, admin, app) -> None:
    # the tests' SES endpoint: nothing answers there (connection refused)
    campaign = await factories.campaign(client, admin, from_address=BAD)
    assert campaign["status"] == "draft"
    verdict, _ = app.state.senders._answers[("us-east-1", "unaligned.example")]  # noqa: SLF001
    assert verdict.state == "unknown" and "EndpointConnectionError" in verdict.detail


async def test_the_console_shares_the_check(
    settings: Settings, clean_standin, sessionmaker, engine, client, admin
) -> None:
    template = await factories.template(client, admin)
    segment = await factories.segment(client, admin)
    await make_person(sessionmaker, settings, "ed@example.test", "marketer")
    own = settings.model_copy(update={"ses_endpoint_url": clean_standin.url})
    async with api_client(own) as browser:
        assert (await sign_in(browser, "ed@example.test")).status_code == 303
        form = {
            "csrf": await session_csrf(browser),
            "name": "from the console",
            "template_id": str(template["id"]),
            "segment_id": str(segment["id"]),
            "from_address": BAD,
        }
        r = await browser.post("/console/campaigns", data=form)
        assert r.status_code == 422, r.text
        assert "mailer ses setup --domain unaligned.example" in r.text
    assert await _count(engine, "campaigns") == 0
