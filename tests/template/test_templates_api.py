"""Templates over the API: versions, listing, render previews, syntax errors, MJML."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests import factories

LAYOUT = '{% extends "layouts/default.html" %}{% block content %}<p>Hi {{ name }}</p>{% endblock %}'


async def _create(client, admin, **body):
    payload = {"name": "t", "subject": "Hello", "html": "<p>Hi</p>", **body}
    return await client.post("/v1/templates", headers=admin, json=payload)


async def test_put_makes_a_new_version_and_get_lists_them(client, admin):
    created = (await _create(client, admin, subject="v1 subject")).json()
    assert created["version"] == 1 and created["format"] == "html"
    r = await client.put(
        f"/v1/templates/{created['id']}",
        headers=admin,
        json={"subject": "v2 subject", "html": "<p>two</p>"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 2
    got = (await client.get(f"/v1/templates/{created['id']}", headers=admin)).json()
    assert got["version"] == 2 and got["subject"] == "v2 subject" and got["html"] == "<p>two</p>"
    assert [(v["version"], v["subject"]) for v in got["versions"]] == [
        (1, "v1 subject"),
        (2, "v2 subject"),
    ]


async def test_a_campaign_keeps_the_version_it_was_created_with(client, admin):
    template = await factories.template(client, admin, subject="first {{ campaign.name }}")
    campaign = await factories.campaign(client, admin, template_id=template["id"])
    r = await client.put(
        f"/v1/templates/{template['id']}",
        headers=admin,
        json={"subject": "second", "html": "<p>x</p>"},
    )
    assert r.status_code == 200
    from sqlalchemy import text

    async with client._transport.app.state.engine.connect() as conn:  # type: ignore[attr-defined]
        subject = (
            await conn.execute(
                text(
                    "SELECT v.subject FROM campaigns c JOIN template_versions v"
                    " ON v.id = c.template_version_id WHERE c.id = :id"
                ),
                {"id": campaign["id"]},
            )
        ).scalar_one()
    assert subject == "first {{ campaign.name }}"


async def test_list_is_cursor_paginated(client, admin):
    ids = [(await _create(client, admin, name=f"t{i}")).json()["id"] for i in range(5)]
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/templates", headers=admin, params=params)).json()
        seen += [t["id"] for t in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == ids
    r = await client.get("/v1/templates", headers=admin, params={"cursor": "x"})
    assert r.status_code == 422 and r.json()["error"]["details"][0]["path"] == ["query", "cursor"]


async def test_unknown_template_is_404(client, admin):
    for method, path, body in [
        ("GET", "/v1/templates/999", None),
        ("PUT", "/v1/templates/999", {"subject": "s", "html": "h"}),
        ("POST", "/v1/templates/999/render", {}),
    ]:
        r = await client.request(method, path, headers=admin, json=body)
        assert r.status_code == 404, (method, path, r.text)
        assert r.json()["error"]["code"] == "not_found"


async def test_syntax_errors_name_the_part_and_the_line(client, admin):
    cases = [
        ({"subject": "Hi {{ name"}, "subject", 1),
        ({"html": "<p>\n\n{% if x %}open</p>"}, "html", 3),
        ({"text": "line\n{{ 1 + }}"}, "text", 2),
        ({"html": '{% extends "layouts/missing.html" %}'}, "html", 1),
    ]
    for body, part, line in cases:
        r = await _create(client, admin, **body)
        assert r.status_code == 422, r.text
        error = r.json()["error"]
        assert error["message"].startswith(f"{part}:"), error
        assert error["details"][0]["path"] == ["body", part]
        assert f"line {line}" in error["message"]
    r = await client.put(
        f"/v1/templates/{(await _create(client, admin)).json()['id']}",
        headers=admin,
        json={"subject": "s", "html": "{% for %}"},
    )
    assert r.status_code == 422 and r.json()["error"]["details"][0]["path"] == ["body", "html"]
    listed = (await client.get("/v1/templates", headers=admin)).json()["items"]
    assert len(listed) == 1 and listed[0]["version"] == 1  # nothing was stored


async def test_render_uses_the_named_contact_and_data(client, admin):
    r = await client.put(
        "/v1/contacts/ada@example.test",
        headers=admin,
        json={"attributes": {"first_name": "Ada"}, "tags": ["vip"]},
    )
    assert r.status_code == 201
    template = (
        await _create(
            client,
            admin,
            subject="Hi {{ contact.attributes.first_name | default('there') }}",
            html=LAYOUT.replace(
                "{{ name }}", "{{ contact.email }} {{ data.order }} {{ contact.tags | join(',') }}"
            ),
        )
    ).json()
    r = await client.post(
        f"/v1/templates/{template['id']}/render",
        headers=admin,
        json={"email": " ADA@example.test", "data": {"order": "A-17"}},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["subject"] == "Hi Ada"
    assert "Hi ada@example.test A-17 vip" in body["text"]
    assert 'style="' in body["html"]  # CSS inlined
    assert body["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert body["headers"]["List-Unsubscribe"].startswith("<http://mailer.test/unsubscribe/")

    r = await client.post(
        f"/v1/templates/{template['id']}/render", headers=admin, json={"data": {"order": "B"}}
    )
    assert r.status_code == 200 and r.json()["subject"] == "Hi there"
    r = await client.post(
        f"/v1/templates/{template['id']}/render",
        headers=admin,
        json={"email": "nobody@example.test"},
    )
    assert r.status_code == 404 and "nobody@example.test" in r.json()["error"]["message"]


async def test_render_of_a_missing_variable_is_a_422_naming_it(client, admin):
    template = (await _create(client, admin, html="<p>{{ data.missing.deeper }}</p>")).json()
    r = await client.post(f"/v1/templates/{template['id']}/render", headers=admin, json={})
    assert r.status_code == 422
    assert "missing" in r.json()["error"]["message"]


MJML = """<mjml>
  <mj-body>
    <mj-section>
      <mj-column>
        <mj-text>Hello {{ contact.attributes.first_name | default('there') }}</mj-text>
        <mj-button href="{{ unsubscribe_url }}">Unsubscribe</mj-button>
      </mj-column>
    </mj-section>
  </mj-body>
</mjml>"""


async def test_mjml_is_compiled_at_create_and_rendered_as_html(client, admin):
    r = await _create(client, admin, html=MJML, format="mjml")
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["format"] == "mjml" and created["source"] == MJML
    assert created["html"].lower().startswith("<!doctype html>") and "<mj-" not in created["html"]
    r = await client.post(f"/v1/templates/{created['id']}/render", headers=admin, json={})
    assert r.status_code == 200, r.text
    rendered = r.json()
    assert "Hello there" in rendered["html"] and "Hello there" in rendered["text"]
    assert "Unsubscribe <http://mailer.test/unsubscribe/preview>" in rendered["text"]
    assert max(len(line) for line in rendered["html"].split("\n")) <= 998
    got = (await client.get(f"/v1/templates/{created['id']}", headers=admin)).json()
    assert got["versions"][0]["format"] == "mjml"


async def test_mjml_errors_are_422(client, admin):
    r = await _create(client, admin, html="<mjml><mj-body><mj-section>", format="mjml")
    assert r.status_code == 422, r.text
    assert r.json()["error"]["message"].startswith("html: MJML:")
    r = await _create(client, admin, html="<mjml><mj-body>{% if %}</mj-body></mjml>", format="mjml")
    assert r.status_code == 422 and "line 1" in r.json()["error"]["message"]
    r = await _create(client, admin, html=MJML, format="xml")
    assert r.status_code == 422


GOLDEN = Path(__file__).parent / "golden"
RECEIPT = """{% extends "layouts/plain.html" %}
{% block style %}.total { font-weight: bold; }{% endblock %}
{% block content %}
<p>Hallo {{ contact.attributes.first_name | default('there') }},</p>
<p>thanks for order {{ data.order }}: {{ data["items"] | join(", ") }}.</p>
<p class="total">Total: {{ data.total }} €</p>
<p><a href="https://shop.example/orders/{{ data.order }}">View your order</a></p>
{% endblock %}"""


async def test_golden_transactional_layout_render(client, admin):
    """The plain layout for transactional mail: no unsubscribe footer, no List-Unsubscribe."""
    r = await client.put(
        "/v1/contacts/zoe@example.test",
        headers=admin,
        json={"attributes": {"first_name": "Zoë"}, "tags": []},
    )
    assert r.status_code == 201
    template = (
        await _create(client, admin, subject="Ihre Bestellung {{ data.order }} ✓", html=RECEIPT)
    ).json()
    r = await client.post(
        f"/v1/templates/{template['id']}/render",
        headers=admin,
        json={
            "email": "zoe@example.test",
            "mail_class": "transactional",
            "data": {"order": "A-17", "items": ["Tee", "Kekse <3"], "total": "12,50"},
        },
    )
    assert r.status_code == 200, r.text
    got = r.json()
    path = GOLDEN / "transactional_render.json"
    if os.environ.get("MAILER_UPDATE_GOLDEN"):
        path.write_text(json.dumps(got, ensure_ascii=False, indent=2) + "\n")
    assert got == json.loads(path.read_text())
    assert got["headers"] == {} and got["subject"] == "Ihre Bestellung A-17 ✓"
    assert "unsubscribe" not in got["html"].lower()
    assert "Kekse &lt;3" in got["html"] and "Kekse <3" in got["text"]
    assert '<p class="total" style="font-weight: bold;">' in got["html"]
    assert "View your order <https://shop.example/orders/A-17>" in got["text"]
