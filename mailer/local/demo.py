"""``mailer demo``: seed a stack over its HTTP API, send a campaign, show what happened: the
feedback loop, an unsubscribe by mail (``inbound_demo``) and outgoing webhooks."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from mailer.local import inbound_demo, webhook_demo
from mailer.local.demo_report import (
    DemoError,
    progress_bar,
    report_campaign,
    show_failures,
    show_feedback,
    watch_campaign,
)

SENDER = "demo@mailer.test"
DEMO_TAG = "mailer-demo"
PUT_CONCURRENCY = 32

FIRST_NAMES = (
    "Ada",
    "Grace",
    "Alan",
    "Edsger",
    "Barbara",
    "Donald",
    "Frances",
    "Ken",
    "Margaret",
    "Dennis",
)

TEMPLATE_HTML = """{% extends "layouts/default.html" %}
{% block content %}
<h1>Hello {{ contact.attributes.first_name | default('there') }}!</h1>
<p>This is campaign <b>{{ campaign.name }}</b>, sent by <code>mailer demo</code> through the
local SES emulator.</p>
<p>You are on plan <b>{{ contact.attributes.plan | default('free') }}</b>.</p>
{% endblock %}
"""


@dataclass
class Target:
    api_url: str
    api_key: str
    ses_url: str | None = None  # the stack's embedded SES emulator (unsubscribe by mail)


def _emulator(info: dict[str, Any]) -> str | None:
    """The embedded emulator of a ``mailer dev`` stack (it signs SNS: it has a cert dir)."""
    return info.get("ses_endpoint") if info.get("sns_cert_dir") else None


def run_demo(
    base_dir: Path,
    *,
    contacts: int = 10_000,
    api_url: str | None = None,
    api_key: str | None = None,
    timeout: float = 600.0,
    console: Console | None = None,
) -> int:
    """Run the demo against a running stack, or a dev stack started here; the exit code."""
    from mailer.local.devstack import DevStack, stack_config
    from mailer.local.processes import StackError

    console = console or Console()
    target = _find_stack(base_dir, api_url, api_key)
    stack: DevStack | None = None
    try:
        if target is None:
            console.print("no running stack found: starting the dev stack (mailer dev)")
            stack = DevStack(
                stack_config(base_dir), log=lambda line: console.print(f"[dim]{line}[/dim]")
            )
            info = stack.start()
            target = Target(info["api_url"], info["admin_key"], _emulator(info))
        else:
            console.print(f"using the running stack at {target.api_url}")
        return asyncio.run(_demo(target, contacts, timeout, console))
    except (StackError, DemoError) as exc:
        console.print(f"demo failed: {exc}", style="red", markup=False, highlight=False)
        return 1
    except KeyboardInterrupt:
        console.print("interrupted")
        return 130
    finally:
        if stack is not None:
            console.print("stopping the dev stack")
            stack.stop()


def _find_stack(base_dir: Path, api_url: str | None, api_key: str | None) -> Target | None:
    from mailer.local.devstack import api_ready, read_stack_file

    if api_url and api_key:
        return Target(api_url.rstrip("/"), api_key)
    info = read_stack_file(base_dir)
    if info and info.get("api_url") and info.get("admin_key"):
        try:
            if api_ready(info["api_url"]):
                return Target(info["api_url"], info["admin_key"], _emulator(info))
        except OSError:
            pass
    return None


async def _demo(target: Target, contacts: int, wait_seconds: float, console: Console) -> int:
    headers = {"Authorization": f"Bearer {target.api_key}"}
    limits = httpx.Limits(max_connections=PUT_CONCURRENCY)
    async with httpx.AsyncClient(
        base_url=target.api_url, headers=headers, timeout=60, limits=limits
    ) as client:
        started = time.monotonic()
        # a tag of this run only: a kept dev database holds earlier runs' contacts too
        run_tag = f"{DEMO_TAG}-{int(time.time())}"
        await _seed_contacts(client, contacts, run_tag, console)
        console.print(f"seeded {contacts:,} contacts in {time.monotonic() - started:.1f}s")

        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        template = await _post(
            client,
            "/v1/templates",
            {
                "name": f"demo newsletter {stamp}",
                "subject": "Hello {{ contact.attributes.first_name | default('there') }}",
                "html": TEMPLATE_HTML,
            },
        )
        segment = await _post(
            client,
            "/v1/segments",
            {
                "name": f"demo audience {stamp}",
                # only the demo's own contacts, whatever else the stack holds
                "filter": {"all": [{"field": "tags", "op": "contains", "value": run_tag}]},
            },
        )
        campaign = await _post(
            client,
            "/v1/campaigns",
            {
                "name": f"demo {stamp}",
                "template_id": template["id"],
                "segment_id": segment["id"],
                "from_address": SENDER,
            },
        )
        console.print(
            f"template {template['id']}, segment {segment['id']}, "
            f"campaign {campaign['id']}: sending"
        )
        hooks = await webhook_demo.start(client, console)
        since = await inbound_demo.mark(target.ses_url)
        await _post(client, f"/v1/campaigns/{campaign['id']}/send", None, expect=(202,))
        final = await watch_campaign(client, campaign["id"], wait_seconds, console)
        code = report_campaign(final, console)
        if code:
            await show_failures(client, campaign["id"], console)
        else:
            code = await show_feedback(
                client, campaign["id"], _simulated(run_tag)[:contacts], console
            )
        if not code:
            # a reader answers the List-Unsubscribe mailto: SES receiving → SNS → webhook
            # (the run's success@ address: mail to it is delivered)
            reader = _simulated(run_tag)[0]
            code = await inbound_demo.show(
                client, target.ses_url, since, campaign["id"], reader, console
            )
        await webhook_demo.finish(hooks, client, console)
    return code


async def _post(
    client: httpx.AsyncClient, path: str, body: Any, expect: tuple[int, ...] = (200, 201)
) -> dict[str, Any]:
    answer = await client.post(path, json=body)
    if answer.status_code not in expect:
        raise DemoError(f"POST {path} answered {answer.status_code}: {answer.text[:500]}")
    data = answer.json() if answer.content else {}
    return data if isinstance(data, dict) else {}


# -- contacts ------------------------------------------------------------------------------


# the first contacts are SES mailbox-simulator addresses (labelled per run, so that an
# earlier run's suppressions do not leave them out): the feedback loop shows on them
SIMULATED = ("success", "bounce", "complaint", "suppressionlist", "ooto")


def _simulated(run_tag: str) -> list[str]:
    label = run_tag.rsplit("-", 1)[-1]
    return [f"{local}+demo{label}@simulator.amazonses.com" for local in SIMULATED]


def _contact(i: int, run_tag: str = "") -> tuple[str, dict[str, Any]]:
    simulated = _simulated(run_tag)
    email = simulated[i - 1] if run_tag and i <= len(simulated) else f"demo-{i:06d}@example.com"
    attributes = {
        "first_name": FIRST_NAMES[i % len(FIRST_NAMES)],
        "plan": ("free", "pro", "team")[i % 3],
    }
    return email, attributes


async def _seed_contacts(
    client: httpx.AsyncClient, count: int, run_tag: str, console: Console
) -> None:
    if await _import_csv(client, count, run_tag, console):
        return
    await _put_contacts(client, count, run_tag, console)


async def _import_csv(
    client: httpx.AsyncClient, count: int, run_tag: str, console: Console
) -> bool:
    """One CSV import when the API offers it; False to fall back to one PUT per contact."""
    rows = ["email,first_name,plan,tags"]
    for i in range(1, count + 1):
        email, attrs = _contact(i, run_tag)
        rows.append(f"{email},{attrs['first_name']},{attrs['plan']},{DEMO_TAG};{run_tag}")
    answer = await client.post(
        "/v1/contacts/imports",
        content="\n".join(rows).encode(),
        headers={"Content-Type": "text/csv"},
    )
    if answer.status_code != 202:
        return False
    import_id = answer.json()["id"]
    deadline = time.monotonic() + 120
    with progress_bar(console) as progress:
        task = progress.add_task("importing contacts", total=count, rate="")
        while time.monotonic() < deadline:
            state = (await client.get(f"/v1/contacts/imports/{import_id}")).json()
            done = int(state.get("created", 0)) + int(state.get("updated", 0))
            progress.update(task, completed=done + int(state.get("rejected", 0)))
            if state.get("status") == "completed":
                return True
            if state.get("status") == "failed":
                console.print(
                    f"[yellow]import failed ({state.get('errors')}); "
                    "adding contacts one by one[/yellow]"
                )
                return False
            await asyncio.sleep(0.5)
    console.print("[yellow]import did not finish in 120 s; adding contacts one by one[/yellow]")
    return False


async def _put_contacts(
    client: httpx.AsyncClient, count: int, run_tag: str, console: Console
) -> None:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(1, count + 1):
        queue.put_nowait(i)
    errors: list[str] = []

    with progress_bar(console) as progress:
        task = progress.add_task("adding contacts", total=count, rate="")

        async def one_worker() -> None:
            while not queue.empty() and not errors:
                i = queue.get_nowait()
                email, attrs = _contact(i, run_tag)
                answer = await _put(
                    client,
                    f"/v1/contacts/{email}",
                    {"attributes": attrs, "tags": [DEMO_TAG, run_tag]},
                )
                if answer.status_code not in (200, 201):
                    errors.append(f"PUT {email} answered {answer.status_code}: {answer.text[:300]}")
                progress.advance(task)

        await asyncio.gather(*(one_worker() for _ in range(PUT_CONCURRENCY)))
    if errors:
        raise DemoError(errors[0])


async def _put(client: httpx.AsyncClient, path: str, body: Any) -> httpx.Response:
    # PUT is idempotent: a connection the server dropped (e.g. after answering an
    # unread upload early) is simply tried again
    for attempt in range(3):
        try:
            return await client.put(path, json=body)
        except httpx.TransportError:
            if attempt == 2:
                raise
            await asyncio.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")
