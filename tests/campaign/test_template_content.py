"""What templates put into mail, through a real worker to the SES stand-in (which records
every SendEmail call): escaping of contact data, template payloads failing only their own
messages, and a golden marketing message."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from lxml import html as lxml_html

from tests import factories
from tests.campaign.conftest import seed_contacts

GOLDEN = Path(__file__).parent / "golden"
POSTAL = "Mailer GmbH, Hauptstraße 1, 10115 Berlin"


def _simple(call: dict) -> dict:
    return call["Content"]["Simple"]


def _lines_fit(call: dict) -> None:
    simple = _simple(call)
    for part in (simple["Body"]["Html"]["Data"], simple["Body"]["Text"]["Data"]):
        assert max(len(line.encode()) for line in part.split("\n")) <= 998  # octets
    for header in simple.get("Headers", []):
        assert len(header["Name"]) + 2 + len(header["Value"]) <= 998


async def _send(client, admin, html: str, subject: str = "Hi", **campaign) -> dict:
    template = await factories.template(client, admin, subject=subject, html=html)
    sent = await factories.campaign(client, admin, template_id=template["id"], **campaign)
    r = await client.post(f"/v1/campaigns/{sent['id']}/send", headers=admin)
    assert r.status_code == 202, r.text
    return sent


async def test_html_and_script_in_contact_attributes_are_escaped_in_html_and_plain_in_text(
    client, admin, engine, clean_standin, start_worker
):
    evil = {
        "first_name": '<a href="https://evil.example">Reset your password</a>',
        "company": "<script>alert(document.cookie)</script>",
        "city": 'Tom & Jerry\'s "place" <b>',
    }
    await seed_contacts(engine, 1, attributes=lambda i: evil)
    start_worker()
    html = (
        '{% extends "layouts/default.html" %}{% block content %}'
        "<p>Hi {{ contact.attributes.first_name }}</p>"
        "<p>From {{ contact.attributes.company }} in {{ contact.attributes.city }}</p>"
        '<p><a href="https://mailer.test/?c={{ contact.attributes.city }}">go</a></p>'
        "{% endblock %}"
    )
    campaign = await _send(client, admin, html, subject="{{ contact.attributes.city }}")
    await factories.wait_for_status(client, admin, campaign["id"], {"completed"}, 60)
    (call,) = clean_standin.control.messages()
    simple = _simple(call)
    body = simple["Body"]["Html"]["Data"]
    # parsed as a mail client would: the values are text and attribute values, no markup
    tree = lxml_html.document_fromstring(body)
    assert not tree.xpath("//script") and not tree.xpath("//b")
    assert [a.get("href") for a in tree.xpath("//a")][:1] == [
        "https://mailer.test/?c=" + evil["city"]
    ]
    paragraphs = [p.text_content() for p in tree.xpath("//div[@class='content']/p")]
    assert paragraphs[:2] == [
        f"Hi {evil['first_name']}",
        f"From {evil['company']} in {evil['city']}",
    ]
    assert 'Hi &lt;a href="https://evil.example"&gt;Reset your password&lt;/a&gt;' in body
    assert "&lt;script&gt;alert(document.cookie)&lt;/script&gt;" in body
    text = simple["Body"]["Text"]["Data"]
    assert f"Hi {evil['first_name']}" in text
    assert f"From {evil['company']} in {evil['city']}" in text
    assert simple["Subject"]["Data"] == evil["city"]  # the subject is not HTML: not escaped
    _lines_fit(call)


BOMBS = {
    "loop": "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}",
    "slow": "{% for i in range(10000) %}{{ range(10000)|list|sort|first }}{% endfor %}",
    "deep": "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
    "big": "{{ 'x' * 1000000000 }}",
    "internal": "{{ contact|attr('\\x5f\\x5fclass\\x5f\\x5f') }}",
}
EXPECTED = {
    "loop": "loop limit",
    "slow": "time limit",
    "deep": "recursion limit",
    "big": "output limit",
    "internal": "unsafe",
}


async def test_a_payload_in_a_campaign_template_fails_only_its_messages(
    client, admin, engine, clean_standin, start_worker
):
    kinds = list(BOMBS)
    emails = await seed_contacts(
        engine,
        40,
        attributes=lambda i: {
            "first_name": f"Name{i}",
            **({"evil": kinds[i]} if i < len(kinds) else {}),
        },
    )
    worker = start_worker()
    branches = "".join(
        f"{{% if contact.attributes.get('evil') == '{kind}' %}}{bomb}{{% endif %}}"
        for kind, bomb in BOMBS.items()
    )
    html = (
        '{% extends "layouts/default.html" %}{% block content %}'
        "<p>Hi {{ contact.attributes.first_name }}</p>" + branches + "{% endblock %}"
    )
    campaign = await _send(client, admin, html)
    done = await factories.wait_for_status(client, admin, campaign["id"], {"completed"}, 90)
    assert done["stats"]["sent"] == 35 and done["stats"]["failed"] == 5, worker.log()

    failed = {
        m["email"]: m
        for m in await factories.all_messages(client, admin, campaign["id"], status="failed")
    }
    for i, kind in enumerate(kinds):
        assert EXPECTED[kind] in failed[emails[i]]["error"], failed[emails[i]]
        assert "0x" not in failed[emails[i]]["error"]
    sent_to = {c["Destination"]["ToAddresses"][0] for c in clean_standin.control.messages()}
    assert sent_to == set(emails[len(kinds) :])

    # the worker is healthy: the next campaign goes out whole
    assert worker.process.poll() is None
    ok = await _send(client, admin, factories.HTML)
    done = await factories.wait_for_status(client, admin, ok["id"], {"completed"}, 60)
    assert done["stats"]["sent"] == 40, worker.log()
    assert worker.process.poll() is None


GOLDEN_HTML = """{% extends "layouts/default.html" %}
{% block style %}.lead { font-weight: bold; } .note { color: #374151; }{% endblock %}
{% block content %}
<h1>Grüße, {{ contact.attributes.first_name }}!</h1>
<p class="lead">Ihre Bestellung {{ contact.attributes.order }} ist unterwegs ✓</p>
<p class="note">{% for i in range(60) %}Wort{{ i }} und noch ein paar Wörter {% endfor %}</p>
<p><a href="https://mailer.test/offer?utm_source=mail&amp;c={{ campaign.id }}">Zum Angebot</a></p>
{% endblock %}"""
GOLDEN_SUBJECT = "Grüße, {{ contact.attributes.first_name }} — Ihre Bestellung 🎉"


def _normalised(call: dict, campaign_id: int) -> dict:
    """The call as it reaches SES, with the ids and the token of this run replaced."""
    raw = json.dumps(
        {
            k: call[k]
            for k in (
                "FromEmailAddress",
                "Destination",
                "Content",
                "EmailTags",
                "ConfigurationSetName",
            )
        },
        ensure_ascii=False,
    )
    raw = re.sub(r"/unsubscribe/[A-Za-z0-9_.=-]+", "/unsubscribe/TOKEN", raw)
    raw = re.sub(r"unsubscribe-[A-Za-z0-9_.=-]+", "unsubscribe-TOKEN", raw)
    raw = raw.replace(f"c={campaign_id}", "c=CAMPAIGN")
    raw = raw.replace(f"<campaign-{campaign_id}.", "<campaign-CAMPAIGN.")
    out = json.loads(raw)
    for tag in out["EmailTags"]:
        if tag["Name"] in ("campaign_id", "message_id"):
            tag["Value"] = tag["Name"].upper()
    return out


async def test_golden_marketing_message(client, admin, engine, clean_standin, start_worker):
    await seed_contacts(
        engine, 1, prefix="kunde", attributes=lambda i: {"first_name": "Zoë", "order": "A-17"}
    )
    start_worker(MAILER_PUBLIC_URL="https://mailer.example", MAILER_POSTAL_ADDRESS=POSTAL)
    campaign = await _send(
        client, admin, GOLDEN_HTML, subject=GOLDEN_SUBJECT, from_address="news@mailer.test"
    )
    await factories.wait_for_status(client, admin, campaign["id"], {"completed"}, 60)
    (call,) = clean_standin.control.messages()
    got = _normalised(call, campaign["id"])
    path = GOLDEN / "marketing_message.json"
    if os.environ.get("MAILER_UPDATE_GOLDEN"):
        path.write_text(json.dumps(got, ensure_ascii=False, indent=2) + "\n")
    assert got == json.loads(path.read_text())

    # and what the golden file shows, spelt out
    simple = _simple(call)
    assert simple["Subject"] == {"Data": "Grüße, Zoë — Ihre Bestellung 🎉", "Charset": "UTF-8"}
    headers = {h["Name"]: h["Value"] for h in simple["Headers"]}
    # no mailto without inbound unsubscribes (tests/deliverability/test_inbound.py)
    assert re.fullmatch(r"<https://mailer\.example/unsubscribe/[^>]+>", headers["List-Unsubscribe"])
    assert headers["List-Id"] == f'"Launch" <campaign-{campaign["id"]}.mailer.test>'

    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    html = simple["Body"]["Html"]["Data"]
    assert simple["Body"]["Html"]["Charset"] == "UTF-8"
    assert '<p class="lead" style="font-weight: bold;">' in html  # CSS inlined
    assert "@media only screen" in html and ".lead {" not in html  # only @media rules stay
    assert POSTAL in html and "https://mailer.example/unsubscribe/" in html  # the footer
    # and the preference centre, signed with the same token: it opens this reader's topics
    [preferences] = re.findall(r'href="https://mailer\.example(/preferences/[^"]+)"', html)
    assert "Manage your subscriptions</a>" in html
    page = await client.get(preferences)
    assert page.status_code == 200 and "Your subscriptions" in page.text
    text = simple["Body"]["Text"]["Data"]
    assert text.startswith("Grüße, Zoë!\n\nIhre Bestellung A-17 ist unterwegs ✓\n")
    assert f"Zum Angebot <https://mailer.test/offer?utm_source=mail&c={campaign['id']}>" in text
    assert POSTAL in text
    long_paragraph = len(" ".join(f"Wort{i} und noch ein paar Wörter" for i in range(60)))
    assert long_paragraph > 998  # so the folding below was needed
    _lines_fit(call)
