"""Factories of the subscription tests: topics, forms and form posts over HTTP."""

from __future__ import annotations

import time
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from mailer.config import Settings
from mailer.subscription.tokens import form_token


async def topic(client: httpx.AsyncClient, headers: dict[str, str], name: str, **body: Any) -> int:
    r = await client.post("/v1/topics", headers=headers, json={"name": name, **body})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def form(
    client: httpx.AsyncClient, headers: dict[str, str], topic_ids: list[int], **body: Any
) -> dict:
    payload = {
        "name": "Signup",
        "topic_ids": topic_ids,
        "fields": ["first_name"],
        "consent_text": "Send me the newsletter.",
        "from_address": "news@mailer.test",
        **body,
    }
    r = await client.post("/v1/forms", headers=headers, json=payload)
    assert r.status_code == 201, r.text
    return r.json()


def aged_token(settings: Settings, form_id: int, seconds: float = 10.0) -> str:
    """A genuine form token of a form shown ``seconds`` ago (a person's fill time)."""
    return form_token(settings, form_id, time.time() - seconds)


async def submit(
    client: httpx.AsyncClient, settings: Settings, form_id: int, email: str, **fields: Any
) -> httpx.Response:
    body = {"email": email, "token": aged_token(settings, form_id), **fields}
    return await client.post(f"/subscribe/{form_id}", json=body)


async def rows(engine: AsyncEngine, sql: str, **params: Any) -> list[tuple]:
    async with engine.connect() as conn:
        return [tuple(r) for r in await conn.execute(text(sql), params)]


async def statuses(engine: AsyncEngine, email: str) -> dict[int, str]:
    found = await rows(
        engine,
        "SELECT ct.topic_id, ct.status FROM contact_topics ct JOIN contacts c"
        " ON c.id = ct.contact_id WHERE c.email = :e",
        e=email,
    )
    return {int(t): str(s) for t, s in found}


async def confirmation_mails(engine: AsyncEngine, email: str) -> list[tuple]:
    return await rows(
        engine,
        "SELECT id, data->>'confirm_url' FROM messages WHERE email = :e"
        " AND mail_class = 'transactional' ORDER BY id",
        e=email,
    )
