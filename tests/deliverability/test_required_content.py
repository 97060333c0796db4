"""Bulk mail must show an unsubscribe link and the postal address, and its one-click URL
must be https on a public host: refused at create and at launch, with a 422 naming what
is missing. Transactional mail is not held to the marketing rules."""

from __future__ import annotations

from tests import factories

BARE = "<p>Hello {{ contact.email }}, big news.</p>"
OWN_FOOTER = (
    '<p>News.</p><p><a href="{{ unsubscribe_url }}">Stop these emails</a></p>'
    "<p>{{ postal_address }}</p>"
)


def _missing(r) -> set[str]:  # type: ignore[no-untyped-def]
    assert r.status_code == 422, r.text
    body = r.json()["error"]
    assert body["code"] == "required_content_missing"
    return {d["missing"] for d in body["details"]}


async def _create(client, admin, html: str, **body):  # type: ignore[no-untyped-def]
    template = await factories.template(client, admin, html=html)
    segment = await factories.segment(client, admin)
    payload = {
        "name": "News",
        "template_id": template["id"],
        "segment_id": segment["id"],
        "from_address": "news@mailer.test",
        **body,
    }
    return await client.post("/v1/campaigns", headers=admin, json=payload)


async def test_marketing_campaign_without_link_or_address_is_refused_at_create(client, admin):
    r = await _create(client, admin, BARE)
    assert _missing(r) == {"unsubscribe_link", "postal_address"}
    message = r.json()["error"]["message"]
    assert "unsubscribe_link" in message and "postal_address" in message
    assert (await client.get("/v1/campaigns", headers=admin)).json()["items"] == []


async def test_only_the_missing_item_is_named(client, admin):
    r = await _create(client, admin, '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>')
    assert _missing(r) == {"postal_address"}
    r = await _create(client, admin, "<p>{{ postal_address }}</p>")
    assert _missing(r) == {"unsubscribe_link"}


async def test_a_hidden_or_empty_link_does_not_count(client, admin):
    # the URL in a comment or in a link without text is not a visible link
    r = await _create(
        client,
        admin,
        '<!-- {{ unsubscribe_url }} --><a href="{{ unsubscribe_url }}"></a>{{ postal_address }}',
    )
    assert _missing(r) == {"unsubscribe_link"}


async def test_with_the_default_layout_it_passes(client, admin):
    campaign = await factories.campaign(client, admin)  # the factory's template extends it
    assert campaign["status"] == "draft"


async def test_a_template_with_its_own_footer_passes(client, admin):
    r = await _create(client, admin, OWN_FOOTER)
    assert r.status_code == 201, r.text


async def test_a_template_needing_contact_data_is_checked_on_its_source(client, admin):
    # no default for first_name: the probe render fails; the source shows both names
    html = (
        '{% extends "layouts/default.html" %}{% block content %}'
        "Hi {{ contact.attributes.first_name }}{% endblock %}"
    )
    r = await _create(client, admin, html)
    assert r.status_code == 201, r.text
    r = await _create(client, admin, "Hi {{ contact.attributes.first_name }}")
    assert _missing(r) == {"unsubscribe_link", "postal_address"}


async def test_transactional_campaigns_are_exempt(client, admin):
    r = await _create(client, admin, BARE, mail_class="transactional")
    assert r.status_code == 201, r.text


async def test_a_draft_changed_to_a_template_without_the_link_is_refused(client, admin):
    campaign = await factories.campaign(client, admin)
    # a new template version: the draft keeps its own, so change the draft to it
    r = await client.put(
        f"/v1/templates/{campaign['template_id']}",
        headers=admin,
        json={"subject": "Hi", "html": BARE},
    )
    assert r.status_code in (200, 201), r.text
    r = await client.patch(
        f"/v1/campaigns/{campaign['id']}", headers=admin, json={"template_version": 2}
    )
    assert _missing(r) == {"unsubscribe_link", "postal_address"}


async def test_launch_refuses_without_a_postal_address(api_with):
    async with api_with() as client:
        admin = await _admin(client)
        campaign = await factories.campaign(client, admin)
    async with api_with(postal_address="") as client:
        r = await client.post(f"/v1/campaigns/{campaign['id']}/send", headers=admin)
        assert _missing(r) == {"MAILER_POSTAL_ADDRESS"}
        got = await client.get(f"/v1/campaigns/{campaign['id']}", headers=admin)
        assert got.json()["status"] == "draft"
    async with api_with() as client:
        r = await client.post(f"/v1/campaigns/{campaign['id']}/send", headers=admin)
        assert r.status_code == 202, r.text


async def test_create_refuses_without_a_postal_address(api_with):
    async with api_with(postal_address="") as client:
        admin = await _admin(client)
        template = await factories.template(client, admin)
        segment = await factories.segment(client, admin)
        r = await client.post(
            "/v1/campaigns",
            headers=admin,
            json={
                "name": "x",
                "template_id": template["id"],
                "segment_id": segment["id"],
                "from_address": "news@mailer.test",
            },
        )
        # the layout's footer would show it: only the setting is missing
        assert _missing(r) == {"MAILER_POSTAL_ADDRESS"}


async def test_public_url_must_be_https_and_public_on_real_ses(api_with):
    for url in ("http://mail.example.com", "https://127.0.0.1:8000", "https://localhost"):
        async with api_with(public_url=url, ses_endpoint_url=None) as client:
            admin = await _admin(client)
            template = await factories.template(client, admin)
            segment = await factories.segment(client, admin)
            body = {
                "name": "x",
                "template_id": template["id"],
                "segment_id": segment["id"],
                "from_address": "news@mailer.test",
            }
            r = await client.post("/v1/campaigns", headers=admin, json=body)
            assert _missing(r) == {"MAILER_PUBLIC_URL"}, url
            # transactional mail is not held to it
            r = await client.post(
                "/v1/campaigns", headers=admin, json={**body, "mail_class": "transactional"}
            )
            assert r.status_code == 201, r.text
    async with api_with(public_url="https://mail.example.com", ses_endpoint_url=None) as client:
        admin = await _admin(client)
        assert (await factories.campaign(client, admin))["status"] == "draft"


async def test_the_local_emulator_allows_an_http_loopback_url(api_with):
    async with api_with(
        public_url="http://127.0.0.1:8000", ses_endpoint_url="http://127.0.0.1:15000"
    ) as client:
        admin = await _admin(client)
        assert (await factories.campaign(client, admin))["status"] == "draft"


async def _admin(client) -> dict[str, str]:  # type: ignore[no-untyped-def]
    from mailer.auth.service import create_key
    from mailer.db import transaction

    app = client._transport.app  # noqa: SLF001 - the app this client talks to
    async with transaction(app.state.sessionmaker) as session:
        _, raw = await create_key(session, "admin", ["admin"])
    return {"Authorization": f"Bearer {raw}"}
