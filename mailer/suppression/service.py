"""The suppression list (checked by every send) and unsubscribes from our own pages."""

from __future__ import annotations

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from mailer.contact.addresses import normalise, valid_address
from mailer.errors import NotFound
from mailer.models import Suppression
from mailer.pagination import Page
from mailer.suppression import repository
from mailer.suppression.schemas import SuppressionIn, SuppressionOut, SuppressionPage
from mailer.suppression.tokens import read_token


def _out(row: Suppression) -> SuppressionOut:
    return SuppressionOut(
        email=row.email,
        reason=row.reason,
        scope=row.scope,
        source=row.source,
        created_at=row.created_at,
    )


async def get(session: AsyncSession, email: str) -> SuppressionOut:
    row = await repository.get(session, normalise(email))
    if row is None:
        raise NotFound(f"{normalise(email)} is not suppressed")
    return _out(row)


async def put(
    session: AsyncSession, email: str, body: SuppressionIn
) -> tuple[SuppressionOut, bool]:
    address = valid_address(email, ["path", "email"])
    row, created = await repository.put(session, address, body.reason, body.scope)
    return _out(row), created


async def delete(session: AsyncSession, email: str) -> None:
    if not await repository.remove(session, normalise(email)):
        raise NotFound(f"{normalise(email)} is not suppressed")


async def page(
    session: AsyncSession,
    page: Page[str],
    reason: str | None,
    scope: str | None,
    source: str | None,
) -> SuppressionPage:
    rows, next_cursor = page.cut(
        await repository.page(session, page.last, page.fetch, reason, scope, source),
        key=lambda r: r.email,
    )
    return SuppressionPage(items=[_out(r) for r in rows], next_cursor=next_cursor)


def message_of(secret: str, token: str) -> int:
    """The message id of a genuine token; anything else is a 404 that reveals nothing."""
    message_id = read_token(secret, token)
    if message_id is None:
        raise NotFound("unknown unsubscribe link")
    return message_id


async def check_link(session: AsyncSession, secret: str, token: str) -> int:
    message_id = message_of(secret, token)
    if not await repository.message_exists(session, message_id):
        raise NotFound("unknown unsubscribe link")
    return message_id


async def unsubscribe(session: AsyncSession, secret: str, token: str, how: str) -> bool:
    """Unsubscribe the recipient of the token's message at once; True the first time.

    Stops marketing mail only: the contact is unsubscribed and the address suppressed for
    marketing; recorded as an ``unsubscribe`` event and counted in the campaign once.
    """
    message_id = message_of(secret, token)
    found, new = await repository.unsubscribe(
        session, message_id, how, orjson.dumps({"via": how}).decode()
    )
    if not found:
        raise NotFound("unknown unsubscribe link")
    return new
