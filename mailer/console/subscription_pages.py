"""Topics (with their subscriber counts) and signup forms (with the snippet to embed and a
link to the hosted page): list, create, edit; a contact's topics, changed from its page.
The same service functions as ``/v1/topics``, ``/v1/forms`` and
``/v1/contacts/{email}/topics``."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import Response

from mailer.auth.dependencies import Session
from mailer.console.roles import EDIT, VIEW
from mailer.console.web import back, form, parse, render, route, viewer_of
from mailer.pagination import MAX_LIMIT, IdPage, Page, id_cursor
from mailer.people import service as people
from mailer.subscription import service as subscriptions
from mailer.subscription.schemas import (
    ContactTopicsIn,
    FormIn,
    FormPatch,
    TopicIn,
    TopicOut,
    TopicPatch,
)
from mailer.types import Id

# every topic on one page: a form offers them, a contact's page lists them (few exist)
ALL_TOPICS = Page[int](None, MAX_LIMIT, id_cursor)


async def all_topics(session: Session) -> list[TopicOut]:
    return (await subscriptions.page_topics(session, ALL_TOPICS)).items


# -- topics ----------------------------------------------------------------------------------


def _topic_body(data: dict[str, str]) -> dict[str, Any]:
    # an unticked checkbox is not posted at all
    return {
        "name": data.get("name", "").strip(),
        "description": data.get("description", ""),
        "public": "public" in data,
        "double_opt_in": "double_opt_in" in data,
    }


@route("GET", "/topics", VIEW)
async def topic_list(request: Request, session: Session, page: IdPage) -> Response:
    found = await subscriptions.page_topics(session, page)
    counts = await subscriptions.subscriber_counts(session, [t.id for t in found.items])
    return render(
        request, "topics.html", topics=found.items, counts=counts, next_cursor=found.next_cursor
    )


@route("POST", "/topics", EDIT)
async def create_topic(request: Request, session: Session) -> Response:
    body = parse(TopicIn, _topic_body(await form(request)))
    created = await subscriptions.create_topic(session, body)
    await people.record(
        session, viewer_of(request).actor, "topic.created", "topic", created.id, {"name": body.name}
    )
    return back("/console/topics")


@route("GET", "/topics/{topic_id}", VIEW)
async def topic_page(request: Request, topic_id: Id, session: Session) -> Response:
    topic = await subscriptions.get_topic(session, topic_id)
    counts = await subscriptions.subscriber_counts(session, [topic.id])
    return render(
        request,
        "topic.html",
        topic=topic,
        counts=counts[topic.id],
        audit=await people.history(session, "topic", topic.id),
    )


@route("POST", "/topics/{topic_id}", EDIT)
async def edit_topic(request: Request, topic_id: Id, session: Session) -> Response:
    body = parse(TopicPatch, _topic_body(await form(request)))
    changed = await subscriptions.update_topic(session, topic_id, body)
    actor = viewer_of(request).actor
    await people.record(session, actor, "topic.changed", "topic", topic_id, {"name": changed.name})
    return back(f"/console/topics/{topic_id}")


# -- forms -----------------------------------------------------------------------------------


async def _form_body(request: Request) -> dict[str, Any]:
    data = await form(request)
    posted = await request.form()
    after = data.get("after", "message")
    body: dict[str, Any] = {
        "name": data.get("name", "").strip(),
        "topic_ids": [v for v in posted.getlist("topic_ids") if isinstance(v, str)],
        "fields": [f.strip() for f in data.get("fields", "").split(",") if f.strip()],
        "consent_text": data.get("consent_text", ""),
        "redirect_url": (data.get("redirect_url", "").strip() or None)
        if after == "redirect"
        else None,
        "message": data.get("message", ""),
        "from_address": data.get("from_address", "").strip(),
        # empty: the built-in confirmation mail
        "confirm_subject": data.get("confirm_subject", "").strip() or None,
        "confirm_html": data.get("confirm_html", "").strip() or None,
    }
    if not data.get("message", "").strip():
        del body["message"]  # the default message (a form's create), or left as it is
    return body


@route("GET", "/forms", VIEW)
async def form_list(request: Request, session: Session, page: IdPage) -> Response:
    found = await subscriptions.page_forms(session, request.app.state.settings, page)
    names = {t.id: t.name for t in await all_topics(session)}
    return render(
        request, "forms.html", forms=found.items, names=names, next_cursor=found.next_cursor
    )


@route("GET", "/forms/new", EDIT)
async def new_form(request: Request, session: Session) -> Response:
    return render(request, "form.html", form=None, topics=await all_topics(session), audit=[])


@route("POST", "/forms", EDIT)
async def create_form(request: Request, session: Session) -> Response:
    body = parse(FormIn, await _form_body(request))
    created = await subscriptions.create_form(session, request.app.state.settings, body)
    await people.record(
        session, viewer_of(request).actor, "form.created", "form", created.id, {"name": body.name}
    )
    return back(f"/console/forms/{created.id}")


@route("GET", "/forms/{form_id}", VIEW)
async def form_page(request: Request, form_id: Id, session: Session) -> Response:
    found = await subscriptions.get_form(session, form_id)
    return render(
        request,
        "form.html",
        form=subscriptions.form_out(request.app.state.settings, found),
        topics=await all_topics(session),
        audit=await people.history(session, "form", form_id),
    )


@route("POST", "/forms/{form_id}", EDIT)
async def edit_form(request: Request, form_id: Id, session: Session) -> Response:
    body = parse(FormPatch, await _form_body(request))
    changed = await subscriptions.update_form(session, request.app.state.settings, form_id, body)
    await people.record(
        session,
        viewer_of(request).actor,
        "form.changed",
        "form",
        form_id,
        {"name": changed.name, "version": changed.version},
    )
    return back(f"/console/forms/{form_id}")


# -- a contact's topics ----------------------------------------------------------------------


@route("POST", "/contacts/{email}/topics", EDIT)
async def contact_topics(request: Request, email: str, session: Session) -> Response:
    """The contact page's topics form: ``topic-{id}`` is ``subscribed``, ``unsubscribed``
    or empty (left as it is); recorded as the API records it (source ``api``)."""
    data = await form(request)
    current = await subscriptions.contact_topics(session, email)
    now = {t.topic_id: t.status for t in current.topics}
    choices = [
        {"topic_id": name.removeprefix("topic-"), "status": status}
        for name, status in data.items()
        if name.startswith("topic-") and status and status != now.get(_int(name), "")
    ]
    if choices:
        body = parse(ContactTopicsIn, {"topics": choices})
        await subscriptions.put_contact_topics(session, current.email, body)
        await people.record(
            session,
            viewer_of(request).actor,
            "contact.topics_changed",
            "contact",
            current.email,
            {str(c["topic_id"]): c["status"] for c in choices},
        )
    return back(f"/console/contacts/{current.email}")


def _int(name: str) -> int:
    tail = name.removeprefix("topic-")
    return int(tail) if tail.isdigit() and len(tail) < 19 else 0
