"""What ``mailer demo`` reports: progress bars, the campaign watched to its end, its figures and
the simulator's feedback, and the error it stops with (apart from the seeding and sending)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

FINAL = ("completed", "cancelled", "failed")


class DemoError(RuntimeError):
    pass


def progress_bar(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        console=console,
    )


async def watch_campaign(
    client: httpx.AsyncClient, campaign_id: int, wait_seconds: float, console: Console
) -> dict[str, Any]:
    """Poll the campaign until it ends (or stalls), with a progress bar."""
    deadline = time.monotonic() + wait_seconds
    started = time.monotonic()
    last_done, last_change = -1, time.monotonic()
    with progress_bar(console) as progress:
        task = progress.add_task("sending", total=None, rate="")
        while True:
            answer = await client.get(f"/v1/campaigns/{campaign_id}")
            if answer.status_code != 200:
                raise DemoError(f"GET campaign answered {answer.status_code}: {answer.text}")
            campaign = answer.json()
            stats = campaign.get("stats", {})
            done = sum(int(stats.get(k, 0)) for k in ("sent", "failed", "suppressed"))
            total = int(stats.get("recipients", 0)) or None
            elapsed = max(time.monotonic() - started, 1e-6)
            progress.update(
                task,
                total=total,
                completed=done,
                description=f"sending ({campaign.get('status')})",
                rate=f"{int(stats.get('sent', 0)) / elapsed:,.0f}/s",
            )
            if campaign.get("status") in FINAL:
                return dict(campaign)
            if done != last_done:
                last_done, last_change = done, time.monotonic()
            if time.monotonic() > deadline:
                console.print(f"[red]the campaign did not finish within {wait_seconds:.0f}s[/red]")
                return dict(campaign)
            if time.monotonic() - last_change > 120:
                console.print("[red]no progress for 120 s: is a worker running?[/red]")
                return dict(campaign)
            await asyncio.sleep(0.5)


def report_campaign(campaign: dict[str, Any], console: Console) -> int:
    stats = campaign.get("stats", {})
    table = Table(title=f"campaign {campaign.get('id')}: {campaign.get('status')}")
    table.add_column("stat")
    table.add_column("count", justify="right")
    for name, value in stats.items():
        table.add_row(name, f"{int(value):,}")
    console.print(table)
    recipients = int(stats.get("recipients", 0))
    ok = (
        campaign.get("status") == "completed"
        and recipients > 0
        and int(stats.get("sent", 0)) == recipients
    )
    if ok:
        console.print(f"[green]all {recipients:,} messages sent[/green]")
        return 0
    reason = campaign.get("paused_reason")
    console.print(
        f"[red]not every message was sent (status {campaign.get('status')}"
        f"{', ' + reason if reason else ''})[/red]"
    )
    return 1


async def show_feedback(
    client: httpx.AsyncClient,
    campaign_id: int,
    simulated: list[str],
    console: Console,
    timeout: float = 90.0,  # noqa: ASYNC109
) -> int:
    """Wait for the mailbox simulator's events to come back through SNS → /webhooks/sns →
    the events worker; show deliveries, bounces, complaints and the suppressed addresses."""
    wants_bounces = sum(1 for e in simulated if e.startswith(("bounce+", "suppressionlist+")))
    wants_complaints = sum(1 for e in simulated if e.startswith("complaint+"))
    deadline = time.monotonic() + timeout
    stats: dict[str, Any] = {}
    with progress_bar(console) as progress:
        task = progress.add_task("feedback (SNS → webhook → events)", total=None, rate="")
        while time.monotonic() < deadline:
            answer = await client.get(f"/v1/campaigns/{campaign_id}")
            stats = answer.json().get("stats", {}) if answer.status_code == 200 else {}
            delivered, sent = int(stats.get("delivered", 0)), int(stats.get("sent", 0))
            bounced, complained = int(stats.get("bounced", 0)), int(stats.get("complained", 0))
            progress.update(
                task,
                total=sent,
                completed=delivered + bounced,
                rate=f"{bounced} bounced, {complained} complained",
            )
            if (
                bounced >= wants_bounces
                and complained >= wants_complaints
                and delivered + bounced >= sent
            ):
                break
            await asyncio.sleep(0.5)
    table = Table(title="feedback from the mailbox simulator")
    table.add_column("stat")
    table.add_column("count", justify="right")
    for name in ("sent", "delivered", "bounced", "complained"):
        table.add_row(name, f"{int(stats.get(name, 0)):,}")
    console.print(table)
    suppressed = Table(title="addresses the feedback loop suppressed")
    for column in ("email", "scope", "reason"):
        suppressed.add_column(column)
    found = 0
    for email in simulated:
        answer = await client.get(f"/v1/suppressions/{email}")
        if answer.status_code == 200:
            body = answer.json()
            suppressed.add_row(email, body["scope"], body["reason"])
            found += 1
    console.print(suppressed)
    if (
        int(stats.get("bounced", 0)) < wants_bounces
        or int(stats.get("complained", 0)) < wants_complaints
        or found < wants_bounces
    ):
        console.print(
            "[red]the feedback loop did not close: no bounce or complaint came back "
            "(is the SES emulator the stack's mailbox simulator?)[/red]"
        )
        return 1
    console.print(f"[green]feedback loop closed: {found} addresses suppressed[/green]")
    return 0


async def show_failures(client: httpx.AsyncClient, campaign_id: int, console: Console) -> None:
    answer = await client.get(
        f"/v1/campaigns/{campaign_id}/messages", params={"status": "failed", "limit": 5}
    )
    if answer.status_code != 200:
        return
    body = answer.json()
    items = body.get("items", body) if isinstance(body, dict) else body
    for item in list(items)[:5]:
        console.print(f"  failed: {item.get('email')}: {item.get('error')}")
