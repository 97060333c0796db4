"""What sending a message needs besides its recipient: its ``SendPlan`` (sender, class,
regions, compiled template, configuration set, the campaign it renders for)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from mailer.config import Settings
from mailer.engagement.links import with_utm
from mailer.sending import repository as repo
from mailer.sending.repository import Claimed
from mailer.template.compiler import compiled_off_loop
from mailer.template.render import CompiledTemplate

Read = Callable[[Callable[[AsyncSession], Awaitable[Any]]], Awaitable[Any]]


@dataclass(slots=True, frozen=True)
class CampaignRef:
    """The campaign a message renders for: its mail, or a test send of it."""

    id: int
    name: str


@dataclass(slots=True)
class SendPlan:
    """What sending a message needs besides its recipient: one per campaign (cached per
    process: it never changes once sent), one per transactional message."""

    mail_class: str
    from_address: str
    reply_to: str | None
    regions: list[str]
    template: CompiledTemplate
    configuration_set: str | None
    campaign: CampaignRef | None  # the template's ``campaign``; None for transactional mail
    test: bool = False  # a test send of ``campaign``: transactional lane, not its stats

    @property
    def campaign_id(self) -> int | None:
        """The campaign whose mail this is (not a test send of it): its state rules."""
        return self.campaign.id if self.campaign is not None and not self.test else None


class Plans:
    """The plans of one worker process: campaigns' cached, transactional messages' made
    per message. ``read`` runs a read on a session, retried through database errors."""

    def __init__(self, settings: Settings, read: Read) -> None:
        self.settings = settings
        self._read = read
        self._campaigns: dict[tuple[int, int | None], SendPlan] = {}

    async def for_campaign(self, campaign_id: int, variant: int | None = None) -> SendPlan:
        """A campaign's plan, or that of one of its A/B variants (campaign.ab_tests), read once
        per process (it never changes once sent)."""
        plan = self._campaigns.get((campaign_id, variant))
        if plan is None:
            row = await self._read(
                lambda session: repo.campaign_plan(session, campaign_id, variant)
            )
            template = await compiled_off_loop(
                self.settings.templates_dir,
                row.version_id,
                row.subject,
                with_utm(row.html, row.utm),  # the campaign's links tagged (engagement.links)
                row.text,
            )
            plan = SendPlan(
                mail_class=row.mail_class,
                from_address=row.from_address,
                reply_to=row.reply_to,
                regions=list(row.regions) or list(self.settings.regions),
                template=template,
                configuration_set=self.settings.configuration_sets.get(row.mail_class),
                campaign=CampaignRef(row.id, row.name),
            )
            if len(self._campaigns) > 1000:
                self._campaigns.clear()
            self._campaigns[(campaign_id, variant)] = plan
        return plan

    async def for_message(self, m: Claimed) -> SendPlan:
        """The plan of a transactional message: its own content, sender and class."""
        # inline content (no version) is compiled once per distinct content
        template = await compiled_off_loop(
            self.settings.templates_dir,
            m.template_version_id,
            m.subject or "",
            m.html or "",
            m.text,
        )
        campaign = None
        regions = list(self.settings.regions)
        if m.test_campaign_id is not None and m.test_campaign is not None:
            name, tested_regions = m.test_campaign
            campaign = CampaignRef(m.test_campaign_id, name)
            regions = tested_regions or regions
        return SendPlan(
            mail_class=m.mail_class,
            from_address=m.from_address or "",
            reply_to=m.reply_to,
            regions=regions,
            template=template,
            configuration_set=self.settings.configuration_sets.get(m.mail_class),
            campaign=campaign,
            test=m.test_campaign_id is not None,
        )
