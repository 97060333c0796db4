"""Contacts over HTTP: put, patch, read, list, erase, and CSV imports."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from mailer.auth.dependencies import RequireScope, Session
from mailer.contact import imports, service
from mailer.contact.schemas import (
    ContactIn,
    ContactOut,
    ContactPage,
    ContactPatch,
    ErasureOut,
    ImportAccepted,
    ImportOut,
)
from mailer.errors import Invalid
from mailer.openapi import csv_body
from mailer.pagination import IdPage
from mailer.secrets import signing_key
from mailer.types import Id

router = APIRouter(tags=["contacts"], dependencies=[RequireScope.depends("campaigns")])
IMPORTS_PATH = "/v1/contacts/imports"  # the one route with the import's body limit


@router.put("/contacts/{email}", response_model=ContactOut)
async def put_contact(
    email: str, body: ContactIn, session: Session, response: Response
) -> ContactOut:
    """Create the contact (201) or replace it (200): attributes and tags become exactly
    the body's; what it leaves out is removed. To change part of a contact, use PATCH."""
    contact, created = await service.put(session, email, body)
    response.status_code = 201 if created else 200
    return contact


@router.patch("/contacts/{email}", response_model=ContactOut)
async def patch_contact(email: str, body: ContactPatch, session: Session) -> ContactOut:
    """Change part of an existing contact: `attributes` are merged (a key set to null is
    removed), `tags_add` / `tags_remove` add and remove tags, `status` changes the status.
    What the body leaves out stays as it is. 404 when there is no such contact."""
    return await service.patch(session, email, body)


@router.get("/contacts", response_model=ContactPage)
async def list_contacts(
    session: Session,
    page: IdPage,
    filter: Annotated[
        str | None,
        Query(
            # percent-encoded (up to 12 characters each) it must fit the server's 64 KiB
            # request line, or the answer is the server's bare 400, not this API's 422
            max_length=5000,
            description=(
                'a segment filter as JSON, e.g. {"field":"tags","op":"contains","value":"vip"}'
            ),
        ),
    ] = None,
) -> ContactPage:
    tree = None
    if filter is not None:
        try:
            tree = json.loads(filter)
        except ValueError as exc:
            raise Invalid.at(["query", "filter"], f"the filter is not JSON: {exc}") from exc
    return await service.page(session, tree, page)


@router.delete("/contacts/{email}", response_model=ErasureOut)
async def erase_contact(email: str, session: Session, request: Request) -> ErasureOut:
    """Right to be forgotten: erase the address's personal data; a suppression stays."""
    return await service.erase(session, email, signing_key(request.app.state.settings))


@router.get("/contacts/{email}", response_model=ContactOut)
async def get_contact(email: str, session: Session) -> ContactOut:
    return await service.get(session, email)


@router.post(
    "/contacts/imports",
    status_code=202,
    response_model=ImportAccepted,
    openapi_extra=csv_body(
        "a CSV file with a header row: an `email` column; `tags` (`;`-separated), `status`,"
        " `topics` and `topics_unsubscribed` (topic names or ids, `;` or `|` between them)"
        " optional; every other column an attribute (`age:number`, `vip:boolean`,"
        " `joined:date` give it a type)"
    ),
)
async def create_import(
    request: Request,
    session: Session,
    tag: Annotated[list[str], Query(max_length=20)] = [],  # noqa: B006 - FastAPI default
) -> ImportAccepted:
    """The raw body is the CSV file (the app's BodyGate caps it at max_import_bytes),
    spooled to a temporary file as it arrives, then parsed and staged: however slowly it
    comes, no database connection waits for it. ``?tag=T`` adds T to every imported
    contact."""
    content_type = request.headers.get("content-type", "")
    imports.check_import_type(content_type)  # before a byte of the body is read
    async with imports.spooled(request.stream()) as body:
        return await imports.create_import(session, request.app.state.arq, body, content_type, tag)


@router.get("/contacts/imports/{import_id}", response_model=ImportOut)
async def get_import(import_id: Id, session: Session) -> ImportOut:
    return await imports.get_import(session, import_id)
