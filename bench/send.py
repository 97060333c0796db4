"""Sending benchmarks (SPEC 7, issue 3); prints its figures and the ratios it is judged by.

    python bench/send.py [--calls 20000] [--in-flight 200] [--latencies 0,50] [--uvloop]

Targets:
  worker / bare loop, both at 0 ms SES latency            >= 0.70
  worker at 50 ms / bare loop at 0 ms                      >= 0.70
  4 workers, one region limited to 300/s                   97-100 % of the limit, 0 throttled
  audience fix-up of a 1,000,000-contact segment           <= 20 s
  worker peak RSS during a 1,000,000-recipient campaign    <= 250 MB

The bare loop and the stand-in ceiling run now; the worker-side measurements are marked
below and raise NotImplementedError until the campaign engine exists.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    LoopResult,
    Row,
    bare_send_loop,
    pin_to_cpu,
    print_table,
    process_cpu_seconds,
    raw_http_load,
    run,
    standin,
)
from tests.fixtures.standin import StandinProcess  # noqa: E402

RATIO_TARGET = 0.70
RATE_LIMIT = 300.0
AUDIENCE_SECONDS_TARGET = 20.0
RSS_MB_TARGET = 250.0


@dataclass
class Options:
    calls: int
    in_flight: int
    latencies: list[float]
    uvloop: bool
    raw_requests: int
    raw_connections: int
    recipients: int
    workers: int
    rate_seconds: float
    repeat: int


# -- the bare client loop (the yardstick) ----------------------------------------------


def measure_bare_loop(
    proc: StandinProcess, opts: Options, latency_ms: float
) -> tuple[LoopResult, float]:
    """SendEmail/s of a bare aiobotocore loop (one client, ``in_flight`` callers), the best
    of ``opts.repeat`` runs (on a shared machine noise only ever slows a run down), and
    the stand-in's CPU seconds per call over all runs."""
    best: LoopResult | None = None
    standin_cpu, standin_calls = 0.0, 0
    for _ in range(opts.repeat):
        proc.control.reset()
        proc.control.set_latency(latency_ms)
        cpu_before = process_cpu_seconds(proc.pid)
        result: LoopResult = run(
            bare_send_loop(proc.url, calls=opts.calls, in_flight=opts.in_flight), opts.uvloop
        )
        standin_cpu += process_cpu_seconds(proc.pid) - cpu_before
        standin_calls += proc.control.stats()["totals"]["calls"]  # warm-up calls included
        if best is None or result.per_second > best.per_second:
            best = result
    assert best is not None
    return best, standin_cpu / max(standin_calls, 1)


def measure_standin_ceiling(proc: StandinProcess, opts: Options) -> tuple[LoopResult, float]:
    """Raw keep-alive HTTP load (no client library) and the stand-in's CPU per request."""
    proc.control.reset()
    cpu_before = process_cpu_seconds(proc.pid)
    result: LoopResult = run(
        raw_http_load(proc.url, requests=opts.raw_requests, connections=opts.raw_connections),
        use_uvloop=True,
    )
    standin_cpu = process_cpu_seconds(proc.pid) - cpu_before
    return result, standin_cpu / opts.raw_requests


# -- worker-side measurements: to be filled in with the campaign engine ----------------


def measure_worker(proc: StandinProcess, opts: Options, latency_ms: float) -> float:
    """Campaign sends/s of ONE worker process against ``proc`` at ``latency_ms``.

    Must: create a campaign of enough recipients to run >= 10 s (e.g. 20,000+) in the
    project database, point one ``mailer worker`` subprocess (same SES client library and
    config as the bare loop: ``mailer.sending.transport.client_config``) at ``proc.url``
    with no region rate limit in the way (``MAILER_REGIONS=us-east-1=100000``), launch it,
    and time from the first to the last SES call using ``proc.control.calls()`` (stand-in
    timestamps, so the figure is SES calls/s, not API or DB work). Reset the stand-in and
    set ``proc.control.set_latency(latency_ms)`` first. Return sends per second.
    """
    raise NotImplementedError("needs the campaign engine and `mailer worker`")


def measure_rate_accuracy(
    proc: StandinProcess, opts: Options, workers: int = 4, rate: float = RATE_LIMIT
) -> dict[str, float]:
    """Four workers against one region limited to ``rate``/s: achieved rate and throttling.

    Must: set ``proc.control.set_rates({"us-east-1": rate})`` (the stand-in then answers
    429 above the rate in any 1 s window), start ``workers`` ``mailer worker`` processes
    sharing one Redis limiter (``MAILER_REGIONS=us-east-1`` so the rate comes from
    GetAccount, or ``us-east-1=300``), send a campaign big enough for ``opts.rate_seconds``
    of steady sending, then from ``proc.control.calls()`` take the steady-state rate (drop
    the first and last second) and from ``proc.control.stats()`` the ``throttled`` count
    and ``max_window``. Return ``{"rate": sends/s, "throttled": n, "max_window": n}``.
    Target: rate / limit in [0.97, 1.00] and throttled == 0.
    """
    raise NotImplementedError("needs the campaign engine, `mailer worker` and the limiter")


def measure_audience_fixup(opts: Options) -> float:
    """Seconds to fix the audience of a ``opts.recipients``-contact segment at launch.

    Must: bulk-load ``opts.recipients`` contacts (COPY, not the API) into a fresh
    database, with a few unsubscribed and suppressed ones, create a segment matching all
    and a campaign on it, then time ``campaign_service.launch`` (the set-based
    ``INSERT … SELECT`` of message rows) alone. Check the message row count equals the
    eligible count. Target: <= 20 s for 1,000,000.
    """
    raise NotImplementedError("needs campaign_service.launch")


def measure_rss(proc: StandinProcess, opts: Options) -> dict[str, float]:
    """Peak RSS (MB) of one worker sending a ``opts.recipients``-recipient campaign.

    Must: start the stand-in with ``record="none"`` or ``"summary"`` (its memory is not
    the worker's), launch a 1,000,000-recipient campaign, run one ``mailer worker``
    subprocess and sample its RSS with psutil every 0.5 s until the campaign completes
    (children included). Return ``{"peak_mb": ..., "first_10pct_mb": ..., "last_10pct_mb":
    ...}`` so "flat" can be judged too. Target: peak <= 250 MB.
    """
    raise NotImplementedError("needs the campaign engine and `mailer worker`")


# -- the run ---------------------------------------------------------------------------


def attempt(fn: Callable[..., Any], *args: Any) -> tuple[Any, str]:
    try:
        return fn(*args), ""
    except NotImplementedError as exc:
        return None, f"not implemented yet ({exc})"


def pick(figures: dict[str, float] | None, key: str) -> float | None:
    return figures[key] if figures else None


def ratio_row(name: str, value: float | None, base: float | None, target: str) -> Row:
    if value is None or not base:
        return Row(name, None, "", f"target {target}; missing figure")
    return Row(name, value / base, "", f"target {target}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="sending benchmarks (SPEC 7)")
    parser.add_argument("--calls", type=int, default=20_000, help="SendEmail calls per loop")
    parser.add_argument("--in-flight", type=int, default=200, help="concurrent calls")
    parser.add_argument("--latencies", default="0,50", help="SES latencies (ms) to measure")
    parser.add_argument("--repeat", type=int, default=1, help="best of N bare-loop runs")
    parser.add_argument("--uvloop", action="store_true", help="run the bare loop on uvloop")
    parser.add_argument("--raw-requests", type=int, default=100_000)
    parser.add_argument("--raw-connections", type=int, default=64)
    parser.add_argument("--recipients", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rate-seconds", type=float, default=20.0)
    parser.add_argument("--pin", action="store_true", help="stand-in on CPU 1, this on CPU 0")
    parser.add_argument("--skip-ceiling", action="store_true")
    args = parser.parse_args(argv)
    opts = Options(
        calls=args.calls,
        in_flight=args.in_flight,
        latencies=[float(x) for x in args.latencies.split(",") if x.strip()],
        uvloop=args.uvloop,
        raw_requests=args.raw_requests,
        raw_connections=args.raw_connections,
        recipients=args.recipients,
        workers=args.workers,
        rate_seconds=args.rate_seconds,
        repeat=max(args.repeat, 1),
    )
    loop_name = "uvloop" if opts.uvloop else "asyncio"
    rows: list[Row] = []
    bare: dict[float, float] = {}
    worker: dict[float, float | None] = {}
    rate: dict[str, float] | None = None
    rss: dict[str, float] | None = None

    pin_to_cpu(0 if args.pin else None)
    with standin(record="none", cpu=1 if args.pin else None) as proc:
        if not args.skip_ceiling:
            raw, cpu_per_request = measure_standin_ceiling(proc, opts)
            rows.append(
                Row(
                    "stand-in, raw HTTP load",
                    raw.per_second,
                    "calls/s",
                    f"{opts.raw_connections} connections, load generator in this process; "
                    f"errors {dict(raw.errors)}",
                )
            )
            rows.append(
                Row(
                    "stand-in ceiling, one core",
                    1 / cpu_per_request,
                    "calls/s",
                    f"stand-in CPU {cpu_per_request * 1e6:.0f} us per SendEmail",
                )
            )
        for latency in opts.latencies:
            result, standin_cpu = measure_bare_loop(proc, opts, latency)
            bare[latency] = result.per_second
            rows.append(
                Row(
                    f"bare aiobotocore loop, {latency:g} ms",
                    result.per_second,
                    "sends/s",
                    f"{opts.calls} calls, {opts.in_flight} in flight, {loop_name}; client CPU "
                    f"{result.cpu_seconds / result.calls * 1e6:.0f} us/call (one idle core: "
                    f"{result.calls / result.cpu_seconds:.0f}/s), stand-in "
                    f"{standin_cpu * 1e6:.0f} us/call; "
                    f"errors {dict(result.errors)}",
                )
            )
        for latency in opts.latencies:
            value, note = attempt(measure_worker, proc, opts, latency)
            worker[latency] = value
            rows.append(Row(f"one worker, {latency:g} ms", value, "sends/s", note))
        rate, note = attempt(measure_rate_accuracy, proc, opts, opts.workers, RATE_LIMIT)
        rows.append(
            Row(
                f"{opts.workers} workers, limit {RATE_LIMIT:g}/s",
                pick(rate, "rate"),
                "sends/s",
                note or f"throttled {pick(rate, 'throttled')}",
            )
        )
        rss, note = attempt(measure_rss, proc, opts)
        rows.append(Row("worker peak RSS", pick(rss, "peak_mb"), "MB", note))
    fixup, note = attempt(measure_audience_fixup, opts)
    rows.append(Row(f"audience fix-up, {opts.recipients:,} contacts", fixup, "s", note))
    print_table("Figures", rows)

    base = bare.get(0.0)
    ratios = [
        ratio_row("worker / bare loop, 0 ms", worker.get(0.0), base, f">= {RATIO_TARGET}"),
        ratio_row(
            "worker at 50 ms / bare loop at 0 ms", worker.get(50.0), base, f">= {RATIO_TARGET}"
        ),
        ratio_row(
            "4 workers rate / limit",
            pick(rate, "rate"),
            RATE_LIMIT,
            "0.97-1.00 and 0 throttled",
        ),
        ratio_row("audience fix-up / 20 s", fixup, AUDIENCE_SECONDS_TARGET, "<= 1"),
        ratio_row("worker peak RSS / 250 MB", pick(rss, "peak_mb"), RSS_MB_TARGET, "<= 1"),
    ]
    if 50.0 in bare and base:
        ratios.append(
            Row("bare loop at 50 ms / bare loop at 0 ms", bare[50.0] / base, "", "for reference")
        )
    print_table("Ratios (judged)", ratios)


if __name__ == "__main__":
    main()
