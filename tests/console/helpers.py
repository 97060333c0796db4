"""People and signed-in clients for the console's tests, made as a person would be: an
invitation link, a password set through it, the sign-in form."""

from __future__ import annotations

import re

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mailer.config import Settings
from mailer.db import transaction
from mailer.people import service as people

PASSWORD = "correct horse battery"


def token_of(link: str) -> str:
    return link.rsplit("/", 1)[1]


async def invite(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, email: str, role: str
) -> str:
    """A new person of ``role``; their invitation link."""
    async with transaction(sessionmaker) as session:
        _, link = await people.create(session, settings, None, email, role)
    return link


async def make_person(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    email: str,
    role: str,
    password: str = PASSWORD,
) -> int:
    link = await invite(sessionmaker, settings, email, role)
    async with transaction(sessionmaker) as session:
        person = await people.redeem(session, "invitation", token_of(link), password)
    return person.id


def form_csrf(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]


async def sign_in(
    client: httpx.AsyncClient, email: str, password: str = PASSWORD
) -> httpx.Response:
    """The sign-in page (its CSRF token and cookie), then the form, as a browser does."""
    page = await client.get("/console/login")
    return await client.post(
        "/console/login",
        data={"email": email, "password": password, "csrf": form_csrf(page.text)},
    )


async def session_csrf(client: httpx.AsyncClient) -> str:
    """The CSRF token of the signed-in session (every page carries it)."""
    page = await client.get("/console/account")
    assert page.status_code == 200, page.text
    return re.search(r'data-csrf="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
