"""Rendering throughput: messages per second on one core (target >= 30,000/s).

The default layout with ten personalised fields, escaping on, rendered as the sender
renders each message (``CompiledTemplate.render`` with the context ``Sender.build`` gives:
contact, campaign, data, unsubscribe_url, postal_address) for distinct contacts.

    python bench/render.py                   # 200,000 renders, best of 3
    python bench/render.py --renders 20000 --repeat 1 --pin 0

Rates are renders per CPU-second of this (single-threaded) process, so that other load on
the machine does not count against them. Also printed, for information: the same with
values that need escaping (an apostrophe in every name), which take the full path
(inlining and text conversion per message); the same through ``render_off_loop`` (what a
worker's event loop calls: the fast path on the loop, the rest in a render thread); and
how long an event loop stalls while templates that use their whole time budget render,
on the loop (as before) and through ``render_off_loop``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from mailer.template.compiler import compile_template  # noqa: E402
from mailer.template.render import (  # noqa: E402
    RenderError,
    render_off_loop,
)

FIELDS = [
    "first_name",
    "last_name",
    "city",
    "company",
    "plan",
    "order_id",
    "points",
    "last_login",
    "coupon",
    "manager",
]

SUBJECT = "{{ contact.attributes.first_name }}, your {{ contact.attributes.plan }} update"
HTML = """{% extends "layouts/default.html" %}
{% block style %}.lead { font-weight: bold; } .muted { color: #6b7280; }{% endblock %}
{% block content %}
<h1>Hello {{ contact.attributes.first_name }} {{ contact.attributes.last_name }},</h1>
<p class="lead">Thanks for being with us in {{ contact.attributes.city }}.</p>
<p>Your company {{ contact.attributes.company }} is on the {{ contact.attributes.plan }} plan.
Order {{ contact.attributes.order_id }} has shipped, and you now have
{{ contact.attributes.points }} points.</p>
<p class="muted">Last login: {{ contact.attributes.last_login }}.
Your coupon: {{ contact.attributes.coupon }}.</p>
<p>Questions? Your account manager {{ contact.attributes.manager }} is happy to help.</p>
<p><a href="https://shop.example.com/orders/{{ contact.attributes.order_id }}">Track it</a></p>
{% endblock %}"""


def contexts(n: int, apostrophe: bool = False) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        attributes = {
            "first_name": f"Ann{i}" if not apostrophe else f"O'Ann{i}",
            "last_name": f"Smith{i % 97}",
            "city": ["Berlin", "São Paulo", "New York"][i % 3],
            "company": f"Acme {i % 13} Ltd",
            "plan": ["basic", "pro", "team"][i % 3],
            "order_id": f"A-{100000 + i}",
            "points": str(i * 7 % 5000),
            "last_login": f"2026-11-{1 + i % 28:02d}",
            "coupon": f"SAVE{i % 50}",
            "manager": ["Bo Li", "Zoë Martin", "Kim Park"][i % 3],
        }
        out.append(
            {
                "contact": {
                    "email": f"user{i}@example.com",
                    "attributes": attributes,
                    "tags": ["customer"],
                },
                "campaign": {"id": 1, "name": "Spring"},
                "data": {},
                "unsubscribe_url": f"https://mailer.example.com/unsubscribe/{i}.abcdefghijklmnop",
                "postal_address": "Mailer Inc., 1 Main Street, Springfield",
            }
        )
    return out


def measure(renders: int, distinct: int, apostrophe: bool) -> float:
    compiled = compile_template(ROOT / "templates", SUBJECT, HTML, None)
    ctx = contexts(distinct, apostrophe)
    compiled.render(ctx[0])  # the shape is derived on the first message
    # CPU time of this process: renders per second of one core, even on a shared machine
    start = time.process_time()
    for i in range(renders):
        compiled.render(ctx[i % distinct])
    return renders / (time.process_time() - start)


async def measure_off_loop(renders: int, distinct: int, apostrophe: bool) -> float:
    compiled = compile_template(ROOT / "templates", SUBJECT, HTML, None)
    ctx = contexts(distinct, apostrophe)
    await render_off_loop(compiled, ctx[0])
    start = time.process_time()  # of every thread of the process
    for i in range(renders):
        await render_off_loop(compiled, ctx[i % distinct])
    return renders / (time.process_time() - start)


# a template that renders until its time limit (0.5 s of CPU), then fails
TIME_BOMB = "{% for i in range(10000) %}{{ range(10000)|list|sort|first }}{% endfor %}"


async def loop_stall(bombs: int, off_loop: bool) -> float:
    """The longest an event loop waited for its turn (a 10 ms timer, like the lease
    renewals and SES answers of a worker) while ``bombs`` time bombs rendered at once."""
    compiled = compile_template(ROOT / "templates", "s", TIME_BOMB, None)
    lags: list[float] = []

    async def ticker() -> None:
        while True:
            t = time.perf_counter()
            await asyncio.sleep(0.01)
            lags.append(time.perf_counter() - t - 0.01)

    async def one() -> None:
        try:
            if off_loop:
                await render_off_loop(compiled, {})
            else:
                compiled.render({})
        except RenderError:
            pass

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.05)
    await asyncio.gather(*(one() for _ in range(bombs)))
    await asyncio.sleep(0.05)
    task.cancel()
    return max(lags)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--renders", type=int, default=200_000)
    parser.add_argument("--distinct", type=int, default=10_000, help="distinct contacts")
    parser.add_argument("--repeat", type=int, default=3, help="runs; the best is reported")
    parser.add_argument("--pin", type=int, default=None, help="pin to this CPU")
    parser.add_argument("--bombs", type=int, default=8, help="time bombs for the loop stall")
    args = parser.parse_args()
    if args.pin is not None:
        os.sched_setaffinity(0, {args.pin})
    load = os.getloadavg()[0]
    best = max(measure(args.renders, args.distinct, False) for _ in range(args.repeat))
    slow_n = max(args.renders // 50, 200)
    slow = measure(slow_n, min(args.distinct, slow_n), True)
    print(f"load average (1 min) at start: {load:.2f} on {os.cpu_count()} CPUs")
    print(
        f"default layout, 10 personalised fields, escaping on: {best:,.0f} renders/s "
        f"(best of {args.repeat} x {args.renders:,}; target >= 30,000/s: "
        f"{'ok' if best >= 30_000 else 'BELOW'}; ratio {best / 30_000:.2f})"
    )
    print(f"values that need escaping (full path per message): {slow:,.0f} renders/s")
    fast_off = asyncio.run(measure_off_loop(args.renders // 4, args.distinct, False))
    slow_off = asyncio.run(measure_off_loop(slow_n, min(args.distinct, slow_n), True))
    print(
        f"through render_off_loop: {fast_off:,.0f} renders/s (fast path, on the loop),"
        f" {slow_off:,.0f} renders/s (full path, in a render thread)"
    )
    idle = asyncio.run(loop_stall(0, True))
    print(f"no renders (the machine's own noise): loop stalled {idle * 1000:,.0f} ms")
    for off_loop in (False, True):
        stall = asyncio.run(loop_stall(args.bombs, off_loop))
        where = "render_off_loop" if off_loop else "on the loop"
        print(
            f"{args.bombs} renders at their 0.5 s limit, {where}:"
            f" loop stalled {stall * 1000:,.0f} ms"
        )


if __name__ == "__main__":
    main()
