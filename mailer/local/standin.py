"""A fast SES v2 stand-in for tests, benchmarks and fault injection: its command line.

Speaks enough of the SES v2 REST-JSON API for botocore/aiobotocore ``sesv2`` clients
pointed at it with ``endpoint_url``: SendEmail and GetAccount in ``standin_ses``, HTTP in
``standin_http``, faults in ``standin_faults``; identities, configuration sets, event
destinations and SNS in ``mailer.local.ses_account``. The
region of a call is read from the SigV4 credential scope. Per-region send rates and
daily quotas are enforced the way SES does it; faults and latency are programmable at
runtime under ``/_standin/`` (see ``mailer.local.standin_client.StandinControl``).

    python -m mailer.local.standin --host 127.0.0.1 --port 8025 \
        [--rate us-east-1=300 ...] [--latency-ms 0] [--max-24h 1000000] [--no-keep-bodies]
        [--sns-webhook http://127.0.0.1:8000/webhooks/sns --sns-signing-dir DIR [--deliver-all]]

With ``--sns-webhook`` it is also SES's mailbox simulator (``mailer.local.simulator``):
mail to success@, bounce@, complaint@, suppressionlist@ and ooto@simulator.amazonses.com
gets its SES event, published shortly after the send as a signed SNS notification.

It is a raw asyncio protocol over httptools (uvloop when installed) so that one core
serves tens of thousands of calls per second and leaves the CPU to the code measured.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from mailer.local.ses_account import DEFAULT_SETS, Account
from mailer.local.simulator import DEFAULT_TOPIC, Signer, Simulator, ensure_signing_files
from mailer.local.standin_http import HttpConnection
from mailer.local.standin_ses import DEFAULT_MAX_24H, DEFAULT_RATE, Config, Standin


def _parse_pairs(values: list[str], what: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for value in values:
        region, sep, number = value.partition("=")
        if not sep:
            raise SystemExit(f"--{what} expects REGION=NUMBER, got {value!r}")
        out[region.strip()] = float(number)
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m mailer.local.standin", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8025, help="0 picks a free port")
    parser.add_argument(
        "--rate",
        action="append",
        default=[],
        metavar="REGION=PER_SECOND",
        help="MaxSendRate of a region (repeatable)",
    )
    parser.add_argument(
        "--default-rate",
        type=float,
        default=DEFAULT_RATE,
        help="MaxSendRate of regions without --rate",
    )
    parser.add_argument(
        "--burst", type=int, default=0, help="extra sends allowed in a 1 s window above the rate"
    )
    parser.add_argument("--max-24h", type=float, default=DEFAULT_MAX_24H, help="Max24HourSend")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--jitter-ms", type=float, default=0.0)
    keep = parser.add_mutually_exclusive_group()
    keep.add_argument(
        "--keep-bodies",
        dest="record",
        action="store_const",
        const="full",
        help="record whole requests (default)",
    )
    keep.add_argument(
        "--no-keep-bodies",
        dest="record",
        action="store_const",
        const="summary",
        help="record only recipients, subject and tags",
    )
    keep.add_argument(
        "--no-record",
        dest="record",
        action="store_const",
        const="none",
        help="record only call times and counters",
    )
    parser.add_argument("--no-uvloop", action="store_true", help="use the stock asyncio loop")
    sim = parser.add_argument_group("mailbox simulator (SNS notifications to a webhook)")
    sim.add_argument("--sns-webhook", metavar="URL", help="POST SES events here, signed as SNS")
    sim.add_argument(
        "--sns-signing-dir",
        type=Path,
        metavar="DIR",
        help="signing key and certs/ (made when missing; certs/ is the webhook's"
        " MAILER_SNS_CERT_DIR)",
    )
    sim.add_argument("--sns-topic-arn", default=DEFAULT_TOPIC)
    parser.add_argument(
        "--configuration-set",
        action="append",
        default=None,
        metavar="NAME",
        help="configuration sets every region starts with (repeatable; default: "
        f"{', '.join(DEFAULT_SETS)}; 'none' for none)",
    )
    sim.add_argument(
        "--sns-delay-ms",
        type=float,
        default=500.0,
        help="how long after the send an event is published",
    )
    sim.add_argument(
        "--deliver-all",
        action="store_true",
        help="a Delivery for every accepted recipient, not only the simulator's",
    )
    parser.set_defaults(record="full")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    config = Config(
        rates=_parse_pairs(args.rate, "rate"),
        default_rate=args.default_rate,
        max_24h=args.max_24h,
        burst=args.burst,
        latency_ms=args.latency_ms,
        jitter_ms=args.jitter_ms,
        record=args.record,
    )
    simulator = None
    signer = None
    if args.sns_webhook and args.sns_signing_dir is None:
        raise SystemExit("--sns-webhook needs --sns-signing-dir")
    if args.sns_signing_dir is not None:  # also signs the emulated SNS's confirmations
        signer = Signer(ensure_signing_files(args.sns_signing_dir), args.sns_topic_arn)
    if args.sns_webhook and signer is not None:
        simulator = Simulator(
            signer, args.sns_webhook, delay=args.sns_delay_ms / 1000, deliver_all=args.deliver_all
        )
    sets = [s for s in (args.configuration_set or DEFAULT_SETS) if s != "none"]
    app = Standin(config, simulator, Account(signer, tuple(sets)))
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: HttpConnection(app, loop), args.host, args.port, backlog=4096, reuse_address=True
    )
    gc.freeze()  # startup objects never become garbage: keep them out of every GC pass
    port = server.sockets[0].getsockname()[1]
    # the first stdout line is the contract with tests/fixtures/standin.py
    print(f"standin listening on http://{args.host}:{port}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    if simulator is not None:
        await simulator.close()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if not args.no_uvloop:
        try:
            import uvloop

            loop_factory = uvloop.new_event_loop
        except ImportError:
            pass
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(serve(args))


if __name__ == "__main__":
    main(sys.argv[1:])
