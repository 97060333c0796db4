"""Contacts: created or updated by address, read with their suppression state."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from mailer.contact import repository
from mailer.contact.addresses import valid_address
from mailer.contact.schemas import ContactIn, ContactOut
from mailer.errors import NotFound


async def put(session: AsyncSession, email: str, body: ContactIn) -> tuple[ContactOut, bool]:
    """Create or replace the contact at ``email``; True when it was created."""
    address = valid_address(email, ["path", "email"])
    tags = sorted({t.strip() for t in body.tags if t.strip()})
    _, created = await repository.upsert(session, address, body.attributes, tags)
    return await get(session, address), created


async def get(session: AsyncSession, email: str) -> ContactOut:
    found = await repository.get(session, email.strip().lower())
    if found is None:
        raise NotFound(f"no contact {email.strip().lower()!r}")
    contact, suppressed = found
    return ContactOut(
        id=contact.id, email=contact.email, attributes=contact.attributes, tags=contact.tags,
        status=contact.status, suppressed=suppressed, created_at=contact.created_at,
        updated_at=contact.updated_at,
    )
