"""``mailer status``: campaigns, queues, regions and reputation as tables."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from mailer.cli.common import (
    StackDirOption,
    app,
    out,
    run_on_stack,
    stack_settings,
)

if TYPE_CHECKING:
    from mailer.config import Settings


@app.command()
def status(
    limit: Annotated[int, typer.Option(help="How many recent campaigns to show.")] = 20,
    directory: StackDirOption = None,
    wide: Annotated[bool, typer.Option("--wide", help="Every column, however narrow.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="The tables as JSON.")] = False,
) -> None:
    """Campaigns, queues, regions and reputation as tables (fitted to the terminal)."""
    from mailer.cli.status_layout import show

    settings = stack_settings(directory)
    show(out, run_on_stack(settings, _status_tables(settings, limit)), wide=wide, as_json=as_json)


async def _status_tables(settings: Settings, limit: int) -> list[Table]:
    """The dashboard's numbers as tables: campaigns, queues, regions, reputation, pauses."""
    from redis.asyncio import Redis

    from mailer.campaign.service import progress as campaign_progress
    from mailer.db import create_engine
    from mailer.queues import QUEUES
    from mailer.reputation import repository as reputation
    from mailer.reputation.service import report as reputation_report

    engine = create_engine(settings, pool_size=1)
    try:
        async with engine.connect() as conn:
            campaigns = await reputation.recent_campaigns(conn, limit)
            rep = await reputation_report(conn, settings)
            pauses = await reputation.recent_pauses(conn, 10)
    finally:
        await engine.dispose()

    redis = Redis.from_url(settings.redis_url)
    try:
        depths = [(queue, await redis.zcard(queue)) for queue in QUEUES.values()]
    finally:
        await redis.aclose()

    ct = Table(title="campaigns")
    for column in (
        "id",
        "name",
        "class",
        "status",
        "progress",
        "recipients",
        "sent",
        "failed",
        "suppressed",
        "delivered",
        "bounced",
        "complained",
    ):
        ct.add_column(column, justify="left" if column in ("name", "class", "status") else "right")
    for c in campaigns:
        state = c.status + (f" ({c.paused_reason})" if c.paused_reason else "")
        progress = f"{campaign_progress(c.recipients, c.queued):.1%}" if c.recipients else "-"
        ct.add_row(
            str(c.id),
            c.name,
            c.mail_class,
            state,
            progress,
            *(
                f"{n:,}"
                for n in (
                    c.recipients,
                    c.sent,
                    c.failed,
                    c.suppressed,
                    c.delivered,
                    c.bounced,
                    c.complained,
                )
            ),
        )

    qt = Table(title="queues")
    qt.add_column("queue")
    qt.add_column("jobs waiting", justify="right")
    for name, depth in depths:
        qt.add_row(name, f"{depth:,}")

    rt = Table(title="regions (SES account)")
    for column in (
        "region",
        "send rate (/s)",
        "24 h quota",
        "sent 24 h (SES)",
        "sent 24 h (here)",
        "sending",
        "enforcement",
        "production",
        "checked",
    ):
        rt.add_column(
            column,
            justify="right"
            if "sent" in column or "quota" in column or "rate" in column
            else "left",
        )
    for g in rep.regions:
        rt.add_row(
            g.region,
            f"{g.send_rate_limit:g}" + (" (override)" if g.rate_overridden else ""),
            f"{g.max_24h_send:,.0f}" if g.max_24h_send is not None else "-",
            f"{g.sent_last_24h:,.0f}" if g.sent_last_24h is not None else "-",
            f"{g.sent_24h_recorded:,}",
            {True: "enabled", False: "DISABLED", None: "-"}[g.sending_enabled],
            g.enforcement_status or "-",
            {True: "yes", False: "sandbox", None: "-"}[g.production_access],
            g.checked_at.strftime("%H:%M:%S") if g.checked_at else (g.error or "never"),
        )

    thresholds = rep.thresholds
    rep_table = Table(
        title=f"reputation (bounce {thresholds['bounce_rate']:.2%}, complaint "
        f"{thresholds['complaint_rate']:.3%} after "
        f"{thresholds['min_sends']:.0f} sends)"
    )
    for column in (
        "mail class",
        "region",
        "status",
        "sent 1 h",
        "bounce 1 h",
        "complaint 1 h",
        "sent 24 h",
        "bounce 24 h",
        "complaint 24 h",
    ):
        rep_table.add_column(
            column, justify="left" if column in ("mail class", "region", "status") else "right"
        )
    for r in rep.mail_classes:
        rep_table.add_row(
            r.mail_class,
            r.region or "-",
            r.status,
            f"{r.last_1h.sent:,}",
            f"{r.last_1h.bounce_rate:.2%}",
            f"{r.last_1h.complaint_rate:.3%}",
            f"{r.last_24h.sent:,}",
            f"{r.last_24h.bounce_rate:.2%}",
            f"{r.last_24h.complaint_rate:.3%}",
        )

    pt = Table(title="recent automatic pauses")
    for column in ("when (UTC)", "scope", "class", "campaign", "reason", "resumed"):
        pt.add_column(column)
    for p in pauses:
        pt.add_row(
            p.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            p.scope,
            p.mail_class,
            str(p.campaign_id or "-"),
            p.reason,
            p.resumed_at.strftime("%H:%M:%S") if p.resumed_at else "-",
        )
    return [ct, qt, rt, rep_table, pt]
