from __future__ import annotations

from fastapi import APIRouter, Response

from mailer.auth.dependencies import RequireScope, Session
from mailer.contact import service
from mailer.contact.schemas import ContactIn, ContactOut

router = APIRouter(tags=["contacts"], dependencies=[RequireScope.depends("campaigns")])


@router.put("/contacts/{email}", response_model=ContactOut)
async def put_contact(email: str, body: ContactIn, session: Session, response: Response) -> ContactOut:
    contact, created = await service.put(session, email, body)
    response.status_code = 201 if created else 200
    return contact


@router.get("/contacts/{email}", response_model=ContactOut)
async def get_contact(email: str, session: Session) -> ContactOut:
    return await service.get(session, email)
