"""``/v1/topics``, ``/v1/forms`` and a contact's subscriptions and consent records
(``campaigns`` scope)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from mailer.auth.dependencies import RequireScope, Session
from mailer.pagination import IdPage
from mailer.subscription import service
from mailer.subscription.schemas import (
    ConsentPage,
    ContactTopicsIn,
    ContactTopicsOut,
    FormIn,
    FormOut,
    FormPage,
    FormPatch,
    TopicIn,
    TopicOut,
    TopicPage,
    TopicPatch,
)
from mailer.types import Id

router = APIRouter(tags=["subscriptions"], dependencies=[RequireScope.depends("campaigns")])


@router.post("/topics", response_model=TopicOut, status_code=201)
async def create_topic(body: TopicIn, session: Session) -> TopicOut:
    return await service.create_topic(session, body)


@router.get("/topics", response_model=TopicPage)
async def list_topics(session: Session, page: IdPage) -> TopicPage:
    return await service.page_topics(session, page)


@router.get("/topics/{topic_id}", response_model=TopicOut)
async def get_topic(topic_id: Id, session: Session) -> TopicOut:
    return await service.get_topic(session, topic_id)


@router.patch("/topics/{topic_id}", response_model=TopicOut)
async def update_topic(topic_id: Id, body: TopicPatch, session: Session) -> TopicOut:
    return await service.update_topic(session, topic_id, body)


@router.get("/contacts/{email}/topics", response_model=ContactTopicsOut)
async def contact_topics(email: str, session: Session) -> ContactTopicsOut:
    return await service.contact_topics(session, email)


@router.put("/contacts/{email}/topics", response_model=ContactTopicsOut)
async def put_contact_topics(
    email: str, body: ContactTopicsIn, session: Session
) -> ContactTopicsOut:
    """Subscribe the contact to topics or unsubscribe it (source ``api``)."""
    return await service.put_contact_topics(session, email, body)


@router.get("/contacts/{email}/consent", response_model=ConsentPage)
async def consent_records(email: str, session: Session, page: IdPage) -> ConsentPage:
    """Every change of the contact's subscriptions: when, how, what was shown, from where."""
    return await service.consent_records(session, email, page)


@router.post("/forms", response_model=FormOut, status_code=201)
async def create_form(body: FormIn, request: Request, session: Session) -> FormOut:
    return await service.create_form(session, request.app.state.settings, body)


@router.get("/forms", response_model=FormPage)
async def list_forms(request: Request, session: Session, page: IdPage) -> FormPage:
    return await service.page_forms(session, request.app.state.settings, page)


@router.get("/forms/{form_id}", response_model=FormOut)
async def get_form(form_id: Id, request: Request, session: Session) -> FormOut:
    form = await service.get_form(session, form_id)
    return service.form_out(request.app.state.settings, form)


@router.patch("/forms/{form_id}", response_model=FormOut)
async def update_form(form_id: Id, body: FormPatch, request: Request, session: Session) -> FormOut:
    return await service.update_form(session, request.app.state.settings, form_id, body)
