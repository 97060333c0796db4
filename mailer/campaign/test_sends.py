"""A campaign's test send: its template rendered for a few given addresses and sent on the
transactional lane, marked as tests of the campaign (its stats and state untouched)."""

from __future__ import annotations

from arq import ArqRedis
from sqlalchemy.ext.asyncio import AsyncSession

from mailer.campaign import repository
from mailer.campaign.schemas import TestSendIn
from mailer.config import Settings
from mailer.contact.addresses import valid_address
from mailer.errors import Invalid, NotFound
from mailer.message import repository as message_repo
from mailer.message import service as messages
from mailer.message.schemas import MessageAccepted, TestSendOut
from mailer.template import service as templates
from mailer.template.compiler import compiled_version


async def send_test(
    session: AsyncSession, settings: Settings, redis: ArqRedis, campaign_id: int, body: TestSendIn
) -> TestSendOut:
    """The campaign, rendered with ``data``, to these addresses only: transactional-lane
    messages marked as tests of the campaign; its stats and state stay as they are."""
    campaign = await repository.get(session, campaign_id)
    if campaign is None:
        raise NotFound(f"no campaign {campaign_id}")
    emails = list(
        dict.fromkeys(valid_address(to, ["body", "to", i]) for i, to in enumerate(body.to))
    )
    version = await templates.version(session, campaign.template_version_id)
    compiled = compiled_version(
        settings.templates_dir, version.id, version.subject, version.html, version.text
    )
    problems = await messages.render_problems(
        session,
        settings,
        {i: (compiled, email, body.data) for i, email in enumerate(emails)},
        campaign={"id": campaign.id, "name": campaign.name},
    )
    if problems:
        i, problem = next(iter(problems.items()))
        raise Invalid.at(["body", "to", i], f"for {emails[i]}: {problem}")
    inserted = await message_repo.insert_messages(
        session,
        [
            {
                "email": email,
                "mail_class": campaign.mail_class,
                "template_version_id": campaign.template_version_id,
                "from_address": campaign.from_address,
                "reply_to": campaign.reply_to,
                "data": body.data,
                "test_campaign_id": campaign.id,
            }
            for email in emails
        ],
    )
    ids = [message_id for message_id, _ in inserted]  # no keys: every row is inserted
    messages.enqueue_after_commit(session, redis, ids)
    return TestSendOut(messages=[MessageAccepted(id=i, status="queued") for i in ids])
