"""A/B tests: variants tried on a share of a campaign's recipients, the winner sent to the rest.

1. At creation a campaign may name 2–5 ``variants`` (subject, template version, sender
   name; an empty one is the campaign itself, the control) and an ``ab_test``
   (``test_share``, ``metric``, ``wait_minutes``, ``auto``, ``min_per_variant``).
2. When its audience is fixed (:func:`split`), ``round(recipients × test_share)`` of its
   messages (at least one per variant), picked at random, get a variant, dealt out in
   turn so the variants' sizes differ by at most one (``messages.variant``); the others
   are held (``next_attempt_at = 'infinity'``: no batch takes them, the campaign stays
   ``sending``). The reconciler decides the test once ``wait_minutes`` have passed and
   the test share is finished (none of its messages queued or being sent).
3. The decision (:func:`decide`): per variant, over its delivered messages (its sent ones
   when SES reports no deliveries), the metric: ``human_opens`` (messages opened or
   clicked by a human, engagement.rules), ``human_clicks``, or ``clicks_per_delivered``.
   Rules, in order: any variant under ``min_per_variant`` → variant 1 wins
   (``too_small_sample``); the best value shared by several variants (all zero included)
   → the lowest-numbered of them (``tie``); else the best (``metric``). With ``auto``
   false nothing is decided until ``POST /v1/campaigns/{id}/winner`` names one
   (``picked``, also allowed before the wait is over). The held messages then get the
   winner's variant and are due at once: each recipient gets exactly one message.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from arq import ArqRedis
from jinja2 import TemplateError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mailer.campaign import dispatch
from mailer.campaign.schemas import AbTestIn, AbTestOut, VariantIn, VariantOut
from mailer.contact.addresses import valid_mailbox
from mailer.db import after_commit, transaction
from mailer.engagement.service import rate
from mailer.errors import Conflict, Invalid, NotFound
from mailer.models import Campaign, CampaignVariant
from mailer.template import service as templates
from mailer.template.compiler import check_syntax


def _sender(from_address: str, name: str) -> str:
    address = from_address.rpartition("<")[2].rstrip(">").strip()
    return f"{name} <{address}>"


async def store(
    session: AsyncSession,
    templates_dir: Path,
    campaign: Campaign,
    variants: list[VariantIn] | None,
    ab_test: AbTestIn | None,
) -> None:
    """Validate and keep a new campaign's variants and test settings (422 naming the
    field that is wrong)."""
    if variants is None:
        if ab_test is not None:
            raise Invalid.at(["body", "ab_test"], "an A/B test needs 2 to 5 variants")
        return
    for i, variant in enumerate(variants):
        path: list[str | int] = ["body", "variants", i]
        version_id = None
        if variant.template_version is not None:
            found = await templates.version_number(
                session, campaign.template_id, variant.template_version
            )
            if found is None:
                raise Invalid.at(
                    [*path, "template_version"],
                    f"template {campaign.template_id} has no version {variant.template_version}",
                )
            version_id = found.id
        if variant.subject is not None:
            try:
                check_syntax(templates_dir, "subject", variant.subject)
            except TemplateError as exc:
                raise Invalid.at([*path, "subject"], f"template error: {exc}") from exc
        sender = None
        if variant.from_name is not None:
            sender = valid_mailbox(
                _sender(campaign.from_address, variant.from_name), [*path, "from_name"]
            )
        session.add(
            CampaignVariant(
                campaign_id=campaign.id,
                variant=i + 1,
                subject=variant.subject,
                template_version_id=version_id,
                from_address=sender,
            )
        )
    campaign.ab_test = (ab_test or AbTestIn()).model_dump()
    await session.flush()


# the test share, picked at random and dealt out to the variants in turn; the others held
_SPLIT = text(
    """
    WITH picked AS MATERIALIZED (
        SELECT id, row_number() OVER (ORDER BY random()) AS rn FROM messages
         WHERE campaign_id = :c AND status = 'queued'
    ), size AS (
        SELECT greatest(round(count(*) * CAST(:share AS float8)), least(:k, count(*))) AS n
          FROM picked
    ), tested AS (
        UPDATE messages m SET variant = ((p.rn - 1) % :k) + 1
          FROM picked p, size WHERE m.id = p.id AND p.rn <= size.n
        RETURNING 1
    ), held AS (
        UPDATE messages m SET next_attempt_at = 'infinity'
          FROM picked p, size WHERE m.id = p.id AND p.rn > size.n
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM tested) AS tested, (SELECT count(*) FROM held) AS held
    """
)


async def split(session: AsyncSession, campaign: Campaign) -> None:
    """Hand the test share its variants and hold the rest (once, as the audience is
    fixed); the reconciler decides the test after the wait (:func:`decide_due`)."""
    settings = campaign.ab_test
    if not settings or settings.get("started_at"):
        return
    count = (
        await session.execute(
            text("SELECT count(*) FROM campaign_variants WHERE campaign_id = :c"),
            {"c": campaign.id},
        )
    ).scalar_one()
    await session.execute(
        _SPLIT, {"c": campaign.id, "share": settings["test_share"], "k": int(count)}
    )
    now = datetime.now(UTC)
    decide_at = now + timedelta(minutes=settings["wait_minutes"])
    campaign.ab_test = settings | {
        "started_at": now.isoformat(),
        "decide_at": decide_at.isoformat(),
    }


# tests whose wait is over and whose test share is finished (none of its messages still
# queued or being sent): the reconciler decides them (campaign.tasks.reconcile), so a
# decision survives a lost Redis or a restart like any other work
_DUE = text(
    """
    SELECT c.id FROM campaigns c
     WHERE c.status = 'sending' AND c.ab_test IS NOT NULL
       AND c.ab_test->>'winner' IS NULL AND c.ab_test->>'started_at' IS NOT NULL
       AND coalesce(CAST(c.ab_test->>'auto' AS boolean), true)
       AND CAST(c.ab_test->>'decide_at' AS timestamptz) <= now()
       AND NOT EXISTS (SELECT 1 FROM messages m
                        WHERE m.campaign_id = c.id AND m.variant IS NOT NULL
                          AND m.status IN ('queued', 'claimed', 'sending'))
    """
)


async def decide_due(sessionmaker: async_sessionmaker[AsyncSession], redis: ArqRedis) -> list[int]:
    """Decide every A/B test that is due; the campaigns decided."""
    async with sessionmaker() as session:
        due = [r.id for r in await session.execute(_DUE)]
    for campaign_id in due:
        async with transaction(sessionmaker) as session:
            await decide(session, redis, campaign_id)
    return due


_VARIANTS = text(
    """
    SELECT cv.variant, cv.subject, tv.version AS template_version, cv.from_address,
           count(m.id) AS recipients,
           count(m.id) FILTER (WHERE m.sent_at IS NOT NULL) AS sent,
           count(m.id) FILTER (WHERE m.status IN ('delivered', 'complained')) AS delivered,
           count(e.message_id) FILTER (WHERE e.opens > 0) AS unique_opened,
           count(e.message_id) FILTER (WHERE e.human_opens + e.human_clicks > 0)
               AS human_opened,
           count(e.message_id) FILTER (WHERE e.human_clicks > 0) AS human_clicked,
           coalesce(sum(e.clicks), 0) AS clicks
      FROM campaign_variants cv
      LEFT JOIN template_versions tv ON tv.id = cv.template_version_id
      LEFT JOIN messages m ON m.campaign_id = cv.campaign_id AND m.variant = cv.variant
      LEFT JOIN message_engagement e ON e.message_id = m.id
     WHERE cv.campaign_id = :c
     GROUP BY cv.variant, cv.subject, tv.version, cv.from_address
     ORDER BY cv.variant
    """
)


async def variants(session: AsyncSession, campaign_id: int) -> list[VariantOut]:
    """Each variant's numbers (its test share, and the rest once it won)."""
    out = []
    for r in await session.execute(_VARIANTS, {"c": campaign_id}):
        out.append(
            VariantOut(
                variant=r.variant,
                subject=r.subject,
                template_version=r.template_version,
                from_address=r.from_address,
                recipients=r.recipients,
                sent=r.sent,
                delivered=r.delivered,
                unique_opened=r.unique_opened,
                human_opened=r.human_opened,
                human_clicked=r.human_clicked,
                clicks=int(r.clicks),
                human_open_rate=rate(r.human_opened, r.delivered),
                human_click_rate=rate(r.human_clicked, r.delivered),
                clicks_per_delivered=r.clicks / r.delivered if r.delivered else 0.0,
            )
        )
    return out


async def report(session: AsyncSession, campaign: Campaign) -> AbTestOut | None:
    if not campaign.ab_test:
        return None
    return AbTestOut(**campaign.ab_test, variants=await variants(session, campaign.id))


def choose(found: list[VariantOut], metric: str, min_per_variant: int) -> tuple[int, str]:
    """The winner and why, by the rules of the module's docstring."""
    by_delivered = any(v.delivered for v in found)
    base = {v.variant: (v.delivered if by_delivered else v.sent) for v in found}
    if any(n < min_per_variant for n in base.values()):
        return 1, "too_small_sample"
    part = {
        "human_opens": lambda v: v.human_opened,
        "human_clicks": lambda v: v.human_clicked,
        "clicks_per_delivered": lambda v: v.clicks,
    }[metric]
    values = {v.variant: part(v) / base[v.variant] for v in found}
    best = max(values.values())
    leaders = sorted(k for k, value in values.items() if abs(value - best) < 1e-12)
    if len(leaders) > 1:
        return leaders[0], "tie"
    return leaders[0], "metric"


_SEND_REST = text(
    """
    UPDATE messages SET variant = :w, next_attempt_at = now()
     WHERE campaign_id = :c AND status = 'queued' AND variant IS NULL
    """
)


async def decide(
    session: AsyncSession, redis: Any, campaign_id: int, picked: int | None = None
) -> Campaign:
    """Decide the test (by its rules, or ``picked``) and release the rest with the winner.

    The campaign's row lock makes the job and a user's pick one after the other: the
    second finds it decided (the job then does nothing; a pick is a 409)."""
    campaign = (
        await session.execute(
            text("SELECT id FROM campaigns WHERE id = :c FOR UPDATE"), {"c": campaign_id}
        )
    ).first()
    found_campaign = await session.get(Campaign, campaign_id, populate_existing=True)
    if campaign is None or found_campaign is None:
        raise NotFound(f"no campaign {campaign_id}")
    settings = found_campaign.ab_test
    if not settings:
        raise Conflict(f"campaign {campaign_id} has no A/B test")
    if settings.get("winner") is not None:
        if picked is None:
            return found_campaign
        raise Conflict(f"the A/B test was decided already: variant {settings['winner']}")
    if not settings.get("started_at"):
        raise Conflict("the A/B test has not started: send the campaign first")
    found = await variants(session, campaign_id)
    if picked is not None:
        if picked not in {v.variant for v in found}:
            raise Invalid.at(["body", "variant"], f"no variant {picked}")
        winner, why = picked, "picked"
    else:
        winner, why = choose(found, settings["metric"], settings["min_per_variant"])
    await session.execute(_SEND_REST, {"c": campaign_id, "w": winner})
    found_campaign.ab_test = settings | {
        "winner": winner,
        "decision": why,
        "decided_at": datetime.now(UTC).isoformat(),
    }
    if found_campaign.status == "sending" and redis is not None:
        after_commit(session, lambda: dispatch.enqueue_start(redis, campaign_id))
    await session.flush()
    return found_campaign
