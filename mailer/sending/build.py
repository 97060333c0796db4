"""One message rendered into what SES is given: body, headers, tags, configuration set."""

from __future__ import annotations

from typing import Any

from mailer.config import Settings
from mailer.deliverability import headers as deliverability
from mailer.secrets import signing_key
from mailer.sending.plan import SendPlan
from mailer.sending.repository import Claimed
from mailer.sending.transport import OutboundEmail
from mailer.suppression.tokens import make_token
from mailer.template.content import mail_headers
from mailer.template.render import message_context, render_off_loop


async def build_email(
    settings: Settings, plan: SendPlan, message: Claimed, contact: Any
) -> OutboundEmail:
    """Render one message of either kind; RenderError fails that message only.

    Campaign mail gets the ``campaign`` context and tag; transactional mail and test
    sends the request's ``data`` (a test send the ``campaign`` context too).
    """
    token = make_token(signing_key(settings), message.id)
    public = settings.public_url.rstrip("/")
    unsubscribe_url = f"{public}/unsubscribe/{token}"
    campaign = None
    if plan.campaign is not None:
        campaign = {"id": plan.campaign.id, "name": plan.campaign.name}
    context = message_context(
        message.email,
        contact,
        message.data,
        unsubscribe_url,
        settings.postal_address,
        campaign,
    )
    # on the loop for a short slice, else in a render thread (template.render)
    rendered = await render_off_loop(plan.template, context)
    headers = mail_headers(
        plan.mail_class,
        unsubscribe_url,
        deliverability.unsubscribe_mailto(settings, token),
    )
    if plan.campaign is not None and deliverability.is_bulk(plan.mail_class):
        headers["List-Id"] = deliverability.list_id(
            plan.campaign.id, plan.campaign.name, plan.from_address
        )
    if message.headers:
        headers.update(message.headers)
    tags = {"mail_class": plan.mail_class}
    if plan.campaign_id is not None:
        tags["campaign_id"] = str(plan.campaign_id)
    tags["message_id"] = str(message.id)
    if plan.test:
        tags["test"] = "true"
    if message.tags:
        tags.update(message.tags)
    return OutboundEmail(
        to=message.email,
        from_address=plan.from_address,
        subject=rendered.subject,
        html=rendered.html,
        text=rendered.text,
        reply_to=plan.reply_to,
        headers=headers,
        tags=tags,
        configuration_set=plan.configuration_set,
    )
