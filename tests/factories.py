"""Small async factories over the HTTP API, as a user would create things."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

SUBJECT = "Hello {{ contact.attributes.first_name | default('there') }}"
HTML = (
    '{% extends "layouts/default.html" %}{% block content %}'
    "<p>Hi {{ contact.attributes.first_name | default('there') }}, this is {{ campaign.name }}.</p>"
    "{% endblock %}"
)
# what a marketing template must show when it does not extend the layout (issue 21)
FOOTER = '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a> {{ postal_address }}</p>'


async def contacts(
    client: httpx.AsyncClient, headers: dict[str, str], n: int, prefix: str = "user"
) -> list[str]:
    emails = [f"{prefix}{i}@example.test" for i in range(n)]
    sem = asyncio.Semaphore(20)

    async def put(i: int, email: str) -> None:
        async with sem:
            attributes = {"first_name": f"Name{i}"} if i % 2 == 0 else {}
            r = await client.put(
                f"/v1/contacts/{email}",
                headers=headers,
                json={"attributes": attributes, "tags": ["t"]},
            )
            assert r.status_code in (200, 201), r.text

    await asyncio.gather(*(put(i, e) for i, e in enumerate(emails)))
    return emails


async def template(client: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> dict:
    payload = {"name": "welcome", "subject": SUBJECT, "html": HTML, **body}
    r = await client.post("/v1/templates", headers=headers, json=payload)
    assert r.status_code == 201, r.text
    return r.json()


async def segment(
    client: httpx.AsyncClient, headers: dict[str, str], tree: dict | None = None
) -> dict:
    r = await client.post(
        "/v1/segments", headers=headers, json={"name": "everyone", "filter": tree or {"all": []}}
    )
    assert r.status_code == 201, r.text
    return r.json()


async def campaign(client: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> dict:
    if "template_id" not in body:
        body["template_id"] = (await template(client, headers))["id"]
    if "segment_id" not in body:
        body["segment_id"] = (await segment(client, headers))["id"]
    payload = {"name": "Launch", "from_address": "news@mailer.test", **body}
    r = await client.post("/v1/campaigns", headers=headers, json=payload)
    assert r.status_code == 201, r.text
    return r.json()


async def wait_for_status(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    campaign_id: int,
    statuses: set[str],
    timeout: float = 60.0,  # noqa: ASYNC109 - a polling deadline
) -> dict:
    deadline = time.monotonic() + timeout
    body: dict = {}
    while time.monotonic() < deadline:
        r = await client.get(f"/v1/campaigns/{campaign_id}", headers=headers)
        body = r.json()
        if body["status"] in statuses:
            return body
        await asyncio.sleep(0.2)
    raise AssertionError(f"campaign {campaign_id} not in {statuses} after {timeout}s: {body}")


async def all_messages(
    client: httpx.AsyncClient, headers: dict[str, str], campaign_id: int, status: str | None = None
) -> list[dict]:
    items: list[dict] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 1000}
        if cursor:
            params["cursor"] = cursor
        if status:
            params["status"] = status
        r = await client.get(
            f"/v1/campaigns/{campaign_id}/messages", headers=headers, params=params
        )
        assert r.status_code == 200, r.text
        page = r.json()
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            return items
