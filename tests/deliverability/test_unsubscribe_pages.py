"""The unsubscribe pages: HTML for every outcome (confirm, done, already done, unknown
link) and HEAD answered without a change."""

from __future__ import annotations

from lxml import html as lxml_html

from tests.suppression.test_unsubscribe import _seeded, snapshot


def _title(body: str) -> str:
    return str(lxml_html.document_fromstring(body).findtext(".//title"))


async def test_every_outcome_is_an_html_page(client, admin, engine, settings) -> None:
    _, token, _ = await _seeded(client, admin, engine, settings)
    page = await client.get(f"/unsubscribe/{token}")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert _title(page.text) == "Unsubscribe" and "<form" in page.text

    form = {"content-type": "application/x-www-form-urlencoded"}
    done = await client.post(
        f"/unsubscribe/{token}", content="List-Unsubscribe=One-Click", headers=form
    )
    assert done.status_code == 200 and _title(done.text) == "You are unsubscribed"
    again = await client.post(
        f"/unsubscribe/{token}", content="List-Unsubscribe=One-Click", headers=form
    )
    assert again.status_code == 200 and _title(again.text) == "Already unsubscribed"

    for method in ("GET", "POST"):
        unknown = await client.request(method, "/unsubscribe/1.not-a-real-token")
        assert unknown.status_code == 404
        assert unknown.headers["content-type"].startswith("text/html")
        assert _title(unknown.text) == "Link not recognised"


async def test_head_is_answered_and_changes_nothing(client, admin, engine, settings) -> None:
    _, token, _ = await _seeded(client, admin, engine, settings)
    before = await snapshot(engine)
    r = await client.head(f"/unsubscribe/{token}")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert r.content == b""
    assert (await client.head("/unsubscribe/1.forged")).status_code == 404
    assert await snapshot(engine) == before
