"""Content hygiene on save: scripts, event handlers, javascript: URLs and forms are refused
with the reason; images without alt, links showing another URL and link shorteners are
warned about in the save answer."""

from __future__ import annotations

import pytest

from tests import factories

UNSAFE = [
    ("<p>Hi</p><script>track()</script>", "<script>"),
    ('<a href="https://x.test" onclick="steal()">x</a>', "onclick"),
    ('<img src="x.png" alt="" OnError="x()">', "onerror"),
    ('<a href="javascript:alert(1)">x</a>', "javascript:"),
    ('<form action="https://x.test"><input name="password"></form>', "<form>"),
]


@pytest.mark.parametrize(("html", "named"), UNSAFE)
async def test_unsafe_content_is_refused_with_the_reason(client, admin, html, named):
    r = await client.post(
        "/v1/templates", headers=admin, json={"name": "t", "subject": "s", "html": html}
    )
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert named in error["message"] and "refused" in error["message"]
    assert error["details"][0]["path"] == ["body", "html"]
    assert (await client.get("/v1/templates", headers=admin)).json()["items"] == []


async def test_a_new_version_and_inline_messages_are_held_to_it_too(client, admin, make_key):
    template = await factories.template(client, admin)
    r = await client.put(
        f"/v1/templates/{template['id']}",
        headers=admin,
        json={"subject": "s", "html": "<p onmouseover='x()'>hi</p>"},
    )
    assert r.status_code == 422 and "onmouseover" in r.json()["error"]["message"]
    tx = {"Authorization": f"Bearer {await make_key('transactional')}"}
    r = await client.post(
        "/v1/messages",
        headers=tx,
        json={
            "to": "a@example.test",
            "from_address": "x@mailer.test",
            "subject": "s",
            "html": "<script>x()</script>",
        },
    )
    assert r.status_code == 422 and "<script>" in r.json()["error"]["message"]


async def test_warnings_come_with_the_saved_template(client, admin):
    html = (
        '<img src="https://cdn.test/hero.png">'
        '<img src="https://cdn.test/spacer.gif" alt="">'
        '<a href="https://evil.test/login">https://bank.example/login</a>'
        '<a href="https://bit.ly/abc">our sale</a>'
        '<a href="https://shop.example/x">shop.example</a>'
    )
    r = await client.post(
        "/v1/templates", headers=admin, json={"name": "t", "subject": "s", "html": html}
    )
    assert r.status_code == 201, r.text
    warnings = r.json()["warnings"]
    assert len(warnings) == 3, warnings
    assert "1 image(s) without alt" in warnings[0]
    assert "bank.example/login" in warnings[1] and "evil.test" in warnings[1]
    assert "bit.ly is a link shortener" in warnings[2]
    clean = await factories.template(client, admin)
    assert clean["warnings"] == []
