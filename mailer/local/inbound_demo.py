"""``mailer demo`` shows an unsubscribe by mail: a reader of the campaign answers its
``List-Unsubscribe`` mailto, the local emulator receives that mail as an SES receipt rule
would (a signed ``Received`` notification to ``/webhooks/sns``), and the events worker
unsubscribes exactly that contact.

The mailto is read from the campaign's own mail as the emulator recorded it (its
``List-Unsubscribe`` header), so what is shown is what a reader's mail client would do. The
reader is the run's own ``success+demo…@simulator.amazonses.com`` (labelled per run, so a
kept dev database does not lose a demo contact to each run). Without an embedded emulator
(a stack of one's own, ``MAILER_API_URL``) it is skipped.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from urllib.parse import unquote

import httpx
from rich.console import Console
from rich.table import Table

from mailer.local.standin_client import AsyncStandinControl

_MAILTO = re.compile(r"<mailto:([^?>]+)(?:\?subject=([^>]*))?>")
PAGE = 500


@dataclass(frozen=True)
class Mailto:
    reader: str  # the contact who answers
    to: str  # unsubscribe+<token>@<MAILER_INBOUND_UNSUBSCRIBE_DOMAIN>
    subject: str


def mailto_of(list_unsubscribe: str) -> tuple[str, str] | None:
    """(address, subject) of a ``List-Unsubscribe`` header's mailto, if it has one."""
    match = _MAILTO.search(list_unsubscribe)
    if match is None:
        return None
    return unquote(match.group(1)), unquote(match.group(2) or "unsubscribe")


async def mark(ses_url: str | None) -> int | None:
    """The emulator's last recorded send before the campaign (None: no emulator here)."""
    if ses_url is None:
        return None
    control = AsyncStandinControl(ses_url)
    try:
        return int((await control.stats())["last_seq"])
    except (httpx.HTTPError, KeyError, ValueError):
        return None
    finally:
        await control.aclose()


async def _find(control: AsyncStandinControl, since: int, reader: str) -> Mailto | None:
    """The campaign mail to ``reader`` after ``since``, with a mailto in its
    ``List-Unsubscribe``."""
    while True:
        page = await control.messages(since, limit=PAGE)
        for sent in page:
            to = (sent.get("Destination") or {}).get("ToAddresses") or []
            found = mailto_of(str(sent.get("ListUnsubscribe") or ""))
            if found and reader in to:
                return Mailto(reader, *found)
        if len(page) < PAGE:
            return None
        since = int(page[-1]["seq"])


async def show(
    client: httpx.AsyncClient,
    ses_url: str | None,
    since: int | None,
    campaign_id: int,
    reader: str,
    console: Console,
    timeout: float = 30.0,  # noqa: ASYNC109
) -> int:
    """Unsubscribe one reader by mail and show it; the exit code (0 also when skipped)."""
    if ses_url is None or since is None:
        console.print("[dim]unsubscribe by mail: skipped (no local SES emulator)[/dim]")
        return 0
    control = AsyncStandinControl(ses_url)
    try:
        found = await _find(control, since, reader)
        if found is None:
            console.print(
                "[yellow]unsubscribe by mail: skipped (the campaign's mail has no "
                "List-Unsubscribe mailto: MAILER_INBOUND_UNSUBSCRIBE_DOMAIN is not set)[/yellow]"
            )
            return 0
        await control.receive([found.to], found.subject, sender=found.reader)
    finally:
        await control.aclose()
    console.print(
        f"unsubscribe by mail: {found.reader} wrote to {found.to.split('+', 1)[0]}+…@"
        f"{found.to.rpartition('@')[2]} (the campaign's List-Unsubscribe mailto)"
    )
    deadline = time.monotonic() + timeout
    entry: dict[str, str] = {}
    while time.monotonic() < deadline:
        answer = await client.get(f"/v1/suppressions/{found.reader}")
        if answer.status_code == 200:
            entry = answer.json()
            break
        await asyncio.sleep(0.3)
    stats = (await client.get(f"/v1/campaigns/{campaign_id}")).json().get("stats", {})
    table = Table(title="unsubscribed by mail (SES receiving → SNS → webhook → events)")
    for column in ("email", "scope", "source", "campaign unsubscribed"):
        table.add_column(column)
    if not entry:
        console.print(
            f"[red]the unsubscribe mail of {found.reader} did not unsubscribe it within "
            f"{timeout:.0f} s (is the events worker running?)[/red]"
        )
        return 1
    table.add_row(found.reader, entry["scope"], entry["source"], str(stats.get("unsubscribed", 0)))
    console.print(table)
    console.print(f"[green]{found.reader} unsubscribed by mail[/green]")
    return 0
