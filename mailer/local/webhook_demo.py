"""``mailer demo`` shows an outgoing webhook delivery: a receiver in the demo's process,
an endpoint for it registered on the stack (for the demo's run only), a test event, and
at the end what arrived, every signature checked."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
from collections import Counter
from dataclasses import dataclass, field

import httpx
import orjson
from aiohttp import web
from rich.console import Console
from rich.table import Table

from mailer.webhook_out.signing import sign

WAIT_S = 20.0


@dataclass
class DemoReceiver:
    received: list[tuple[str, str, bool]] = field(default_factory=list)  # id, type, signed
    secret: str = ""
    endpoint_id: int | None = None
    runner: web.AppRunner | None = None
    port: int = 0
    completed: asyncio.Event = field(default_factory=asyncio.Event)  # campaign.completed

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = request.headers
        try:
            expected = sign(
                self.secret, headers["webhook-id"], int(headers["webhook-timestamp"]), body
            )
            signed = any(
                hmac.compare_digest(expected, s)
                for s in headers.get("webhook-signature", "").split()
            )
            kind = str(orjson.loads(body).get("type"))
        except (KeyError, ValueError):
            signed, kind = False, "?"
        self.received.append((headers.get("webhook-id", "?"), kind, signed))
        if kind == "campaign.completed":
            self.completed.set()
        return web.Response(status=204)


async def start(client: httpx.AsyncClient, console: Console) -> DemoReceiver | None:
    """Listen on a free loopback port and register it (every event type)."""
    demo = DemoReceiver()
    app = web.Application()
    app.router.add_post("/hook", demo._handle)
    demo.runner = web.AppRunner(app, access_log=None)
    await demo.runner.setup()
    site = web.TCPSite(demo.runner, "127.0.0.1", 0)
    await site.start()
    demo.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    r = await client.post(
        "/v1/webhooks",
        json={"url": f"http://127.0.0.1:{demo.port}/hook", "description": "mailer demo"},
    )
    if r.status_code != 201:
        console.print(
            f"[yellow]outgoing webhooks: endpoint refused ({r.status_code}): "
            f"{r.text[:200]}[/yellow]"
        )
        await demo.runner.cleanup()
        return None
    demo.endpoint_id, demo.secret = r.json()["id"], r.json()["secret"]
    await client.post(f"/v1/webhooks/{demo.endpoint_id}/test")
    console.print(
        f"outgoing webhooks: receiver on http://127.0.0.1:{demo.port}/hook "
        f"(endpoint {demo.endpoint_id}, every event type)"
    )
    return demo


async def finish(demo: DemoReceiver | None, client: httpx.AsyncClient, console: Console) -> None:
    """Wait for the campaign's completion event, print what arrived, remove the endpoint."""
    if demo is None:
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(demo.completed.wait(), WAIT_S)
    counts = Counter(kind for _, kind, _ in demo.received)
    table = Table(title="outgoing webhooks received (Standard Webhooks signatures)")
    table.add_column("event type")
    table.add_column("received", justify="right")
    for kind, n in sorted(counts.items()):
        table.add_row(kind, f"{n:,}")
    console.print(table)
    bad = sum(1 for _, _, ok in demo.received if not ok)
    if not demo.received:
        console.print(
            "[yellow]no webhook arrived: is a worker of the webhooks queue running, "
            "and MAILER_WEBHOOKS_ALLOW_PRIVATE=true (as `mailer dev` sets it)?[/yellow]"
        )
    elif bad:
        console.print(f"[red]{bad} deliveries with a bad signature[/red]")
    else:
        console.print(
            f"[green]{len(demo.received):,} webhooks delivered, every signature verified[/green]"
        )
    if demo.endpoint_id is not None:
        await client.delete(f"/v1/webhooks/{demo.endpoint_id}")
    if demo.runner is not None:
        await demo.runner.cleanup()
