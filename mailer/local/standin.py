"""A fast SES v2 stand-in for tests, benchmarks and fault injection.

Speaks enough of the SES v2 REST-JSON API for botocore/aiobotocore ``sesv2`` clients
pointed at it with ``endpoint_url``: SendEmail and GetAccount here; identities,
configuration sets, event destinations and SNS in ``mailer.local.ses_account``. The
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
import json
import random
import secrets
import signal
import sys
import time
from array import array
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httptools

from mailer.local.ses_account import DEFAULT_SETS, Account, configuration_set_of
from mailer.local.simulator import DEFAULT_TOPIC, Signer, Simulator, ensure_signing_files
from mailer.local.suppression_list import PATH as SUPPRESSION_PATH
from mailer.local.suppression_list import SuppressionList

DEFAULT_REGION = "us-east-1"
DEFAULT_RATE = 100_000.0  # regions without --rate: effectively unlimited
DEFAULT_MAX_24H = 1_000_000_000.0
DEFAULT_HOLD_S = 30.0  # how long a "timeout" fault holds the request before closing

RECORD_MODES = ("full", "summary", "none")

# kind -> (HTTP status, SES error code, default message). "timeout" never answers.
FAULTS: dict[str, tuple[int, str, str]] = {
    "throttle": (429, "TooManyRequestsException", "Maximum sending rate exceeded."),
    "error500": (500, "InternalFailure", "An internal failure occurred."),
    "reject": (400, "MessageRejected", "Email address is not verified."),
    "paused": (400, "SendingPausedException", "Sending is paused for this account."),
    "suspended": (400, "AccountSuspendedException", "Your account has been suspended."),
    "quota": (400, "LimitExceededException", "Daily message quota exceeded."),
    "region_down": (500, "InternalFailure", "Service unavailable in this region."),
    "credentials": (
        403,
        "UnrecognizedClientException",
        "The security token included in the request is invalid.",
    ),
    "unverified_sender": (
        400,
        "MessageRejected",
        "Email address is not verified. The following identities failed the check in "
        "region US-EAST-1: {sender}",
    ),
    "no_configuration_set": (
        404,
        "NotFoundException",
        "Configuration set <{configuration_set}> does not exist.",
    ),
    "error": (400, "", ""),  # any answer: give ``code``, ``status`` and ``message``
    "timeout": (0, "", ""),
}

_REASONS = {
    200: b"OK",
    400: b"Bad Request",
    401: b"Unauthorized",
    403: b"Forbidden",
    404: b"Not Found",
    429: b"Too Many Requests",
    500: b"Internal Server Error",
}


def _response(status: int, body: bytes, headers: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n"
        % (status, _REASONS.get(status, b"Unknown"), len(body), headers)
    ) + body


def _json(status: int, payload: Any) -> bytes:
    return _response(status, json.dumps(payload).encode())


def _error(status: int, code: str, message: str) -> bytes:
    body = json.dumps({"message": message}).encode()
    return _response(status, body, b"x-amzn-ErrorType: %s:\r\n" % code.encode())


@dataclass
class FaultRule:
    """One entry of the fault schedule: the next ``count`` calls, or each call with
    ``probability``, or (neither given) every call until cleared; with ``for_s``, only
    for that many seconds from when it was set. ``code``/``status`` override the kind's
    answer (kind ``error`` needs them)."""

    kind: str
    region: str | None = None
    count: int | None = None
    probability: float | None = None
    message: str | None = None
    hold_s: float = DEFAULT_HOLD_S
    code: str | None = None
    status: int | None = None
    for_s: float | None = None
    until: float | None = None  # time.monotonic() after which the rule is gone

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> FaultRule:
        kind = str(raw["kind"])
        if kind not in FAULTS:
            raise ValueError(f"unknown fault kind {kind!r}; known: {sorted(FAULTS)}")
        count = raw.get("count")
        probability = raw.get("probability")
        status = raw.get("status")
        for_s = raw.get("for_s")
        if kind == "error" and (not raw.get("code") or status is None):
            raise ValueError("fault kind 'error' needs a code and a status")
        return cls(
            kind=kind,
            region=raw.get("region"),
            count=None if count is None else int(count),
            probability=None if probability is None else float(probability),
            message=raw.get("message"),
            hold_s=float(raw.get("hold_s", DEFAULT_HOLD_S)),
            code=raw.get("code"),
            status=None if status is None else int(status),
            for_s=None if for_s is None else float(for_s),
            until=None if for_s is None else time.monotonic() + float(for_s),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "region": self.region,
            "count": self.count,
            "probability": self.probability,
            "message": self.message,
            "hold_s": self.hold_s,
            "code": self.code,
            "status": self.status,
            "for_s": self.for_s,
            "left_s": None if self.until is None else max(self.until - time.monotonic(), 0.0),
        }


@dataclass
class RegionState:
    rate: float
    max_24h: float
    burst: int = 0
    sent: int = 0
    calls: int = 0
    throttled: int = 0
    quota_exceeded: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    window: deque[float] = field(default_factory=deque)  # accepted sends in the last 1 s
    max_window: int = 0

    def stats(self) -> dict[str, Any]:
        return {
            "rate": self.rate,
            "burst": self.burst,
            "max_24h": self.max_24h,
            "calls": self.calls,
            "sent": self.sent,
            "throttled": self.throttled,
            "quota_exceeded": self.quota_exceeded,
            "faults": dict(self.faults),
            "max_window": self.max_window,
        }


@dataclass
class Config:
    rates: dict[str, float] = field(default_factory=dict)
    default_rate: float = DEFAULT_RATE
    max_24h: float = DEFAULT_MAX_24H
    burst: int = 0
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    record: str = "full"


# What a handler hands back: the bytes to send, after a delay (s); None bytes = hold
# the request for ``delay`` seconds and then drop the connection unanswered.
Reply = tuple[bytes | None, float]


class Standin:
    """The state and the SES semantics; knows nothing about sockets."""

    def __init__(
        self, config: Config, simulator: Simulator | None = None, account: Account | None = None
    ) -> None:
        self.config = config
        self.simulator = simulator
        self.account = account or Account()
        self._id_prefix = f"0100{secrets.token_hex(6)}"
        self._id_counter = 0  # never reset, so MessageIds stay unique across resets
        self.reset()

    # -- state -------------------------------------------------------------------------

    def reset(self) -> None:
        self.regions: dict[str, RegionState] = {}
        self.rates = dict(self.config.rates)
        self.max_24h: dict[str, float] = {}
        self.default_rate = self.config.default_rate
        self.default_max_24h = self.config.max_24h
        self.burst = self.config.burst
        self.latency: dict[str | None, tuple[float, float]] = {
            None: (self.config.latency_ms / 1000, self.config.jitter_ms / 1000)
        }
        self.rules: list[FaultRule] = []
        self.down: set[str | None] = set()  # regions answering 500; None = all
        self.account.reset()
        self.suppression_list = SuppressionList()
        self.seq = 0
        self.records: list[tuple[Any, ...]] = []
        self.call_times = array("d")
        self.call_regions: list[str] = []

    def region(self, name: str) -> RegionState:
        state = self.regions.get(name)
        if state is None:
            state = RegionState(
                rate=self.rates.get(name, self.default_rate),
                max_24h=self.max_24h.get(name, self.default_max_24h),
                burst=self.burst,
            )
            self.regions[name] = state
        return state

    def _delay(self, region: str) -> float:
        fixed, jitter = self.latency.get(region) or self.latency[None]
        return fixed + random.random() * jitter if jitter else fixed

    def _fault(self, region: str, operation_is_send: bool) -> FaultRule | None:
        if self.down and (region in self.down or None in self.down):
            return FaultRule(kind="region_down", region=region)
        if not operation_is_send:
            return None
        if self.rules and any(r.until is not None for r in self.rules):
            now = time.monotonic()
            self.rules = [r for r in self.rules if r.until is None or r.until > now]
        for rule in self.rules:
            if rule.region is not None and rule.region != region:
                continue
            if rule.count is not None:
                rule.count -= 1
                if rule.count <= 0:
                    self.rules.remove(rule)
                return rule
            if rule.probability is None or random.random() < rule.probability:
                return rule
        return None

    def _fault_reply(
        self, state: RegionState, rule: FaultRule, delay: float, body: bytes = b""
    ) -> Reply:
        state.faults[rule.kind] += 1
        if rule.kind == "timeout":
            return None, rule.hold_s
        status, code, message = FAULTS[rule.kind]
        message = rule.message or message
        if "{" in message:
            message = message.format_map(_Fields(body))
        return _error(rule.status or status, rule.code or code, message), delay

    # -- SES operations ------------------------------------------------------------------

    def send_email(self, region: str, body: bytes) -> Reply:
        now = time.monotonic()
        state = self.region(region)
        state.calls += 1
        delay = self._delay(region)
        rule = self._fault(region, True)
        if rule is not None:
            return self._fault_reply(state, rule, delay, body)
        window = state.window
        cutoff = now - 1.0
        while window and window[0] <= cutoff:
            window.popleft()
        if len(window) >= state.rate + state.burst:
            state.throttled += 1
            return _error(429, "TooManyRequestsException", "Maximum sending rate exceeded."), delay
        if state.sent >= state.max_24h:
            state.quota_exceeded += 1
            return _error(400, "LimitExceededException", "Daily message quota exceeded."), delay
        configuration_set = configuration_set_of(body)
        if configuration_set is not None and not self.account.has_set(region, configuration_set):
            message = f"Configuration set <{configuration_set}> does not exist."
            return _error(404, "NotFoundException", message), delay
        mode = self.config.record
        simulated = self.simulator is not None and self.simulator.wants(body)
        if mode != "none" or simulated:  # "none" is for the longest runs: not even parsed
            try:
                request = json.loads(body)
            except ValueError:
                return _error(400, "BadRequestException", "Request body is not valid JSON."), delay
        window.append(now)
        if len(window) > state.max_window:
            state.max_window = len(window)
        state.sent += 1
        self.seq += 1
        self._id_counter += 1
        number = self._id_counter
        self.call_times.append(now)
        self.call_regions.append(region)
        # records hold only atoms (bytes, not dicts) so the GC never has to walk them
        if mode == "full":
            self.records.append((self.seq, now, time.time(), region, number, body))
        elif mode == "summary":
            self.records.append((self.seq, now, time.time(), region, number, _summary(request)))
        if simulated:
            assert self.simulator is not None
            self.simulator.accepted(request, self.message_id(number), region)
        return _response(
            200,
            b'{"MessageId":"%s"}' % self.message_id(number).encode(),
            b"x-amzn-RequestId: %d\r\n" % number,
        ), delay

    def get_account(self, region: str) -> Reply:
        state = self.region(region)
        delay = self._delay(region)
        rule = self._fault(region, False)
        if rule is not None:
            return self._fault_reply(state, rule, delay)
        return _json(
            200,
            {
                "DedicatedIpAutoWarmupEnabled": False,
                "EnforcementStatus": "HEALTHY",
                "ProductionAccessEnabled": True,
                "SendingEnabled": True,
                "SendQuota": {
                    "Max24HourSend": float(state.max_24h),
                    "MaxSendRate": float(state.rate),
                    "SentLast24Hours": float(state.sent),
                },
                "SuppressionAttributes": {"SuppressedReasons": []},
            },
        ), delay

    def message_id(self, number: int) -> str:
        return f"{self._id_prefix}-{number:08x}-0000-0000-0000-000000000000-000000"

    # -- control API ---------------------------------------------------------------------

    def messages(self, since: int, limit: int | None, region: str | None) -> dict[str, Any]:
        rows = self.records[max(since, 0) :]
        if region is not None:
            rows = [r for r in rows if r[3] == region]
        if limit is not None:
            rows = rows[:limit]
        out = []
        for seq, mono, wall, reg, number, payload in rows:
            item = json.loads(payload)
            item.update(seq=seq, t=mono, time=wall, region=reg, MessageId=self.message_id(number))
            out.append(item)
        return {"messages": out, "last_seq": self.seq, "record": self.config.record}

    def calls(self, since: int) -> dict[str, Any]:
        start = max(since, 0)
        calls = [
            {"seq": start + i + 1, "t": t, "region": r}
            for i, (t, r) in enumerate(
                zip(self.call_times[start:], self.call_regions[start:], strict=True)
            )
        ]
        return {"calls": calls, "last_seq": self.seq}

    def stats(self) -> dict[str, Any]:
        regions = {name: state.stats() for name, state in self.regions.items()}
        totals: Counter[str] = Counter()
        faults: Counter[str] = Counter()
        for state in self.regions.values():
            totals.update(
                calls=state.calls,
                sent=state.sent,
                throttled=state.throttled,
                quota_exceeded=state.quota_exceeded,
            )
            faults.update(state.faults)
        return {
            "regions": regions,
            "totals": {
                **{k: totals[k] for k in ("calls", "sent", "throttled", "quota_exceeded")},
                "faults": dict(faults),
            },
            "last_seq": self.seq,
            "faults": [r.to_json() for r in self.rules],
            "down": sorted(r or "*" for r in self.down),
        }

    def set_faults(self, body: dict[str, Any]) -> dict[str, Any]:
        rules = [FaultRule.from_json(raw) for raw in body.get("faults", [])]
        if not body.get("append", False):
            self.rules = []
            self.down = set()
        for rule in rules:
            if rule.kind == "region_down":
                self.down.add(rule.region)
            else:
                self.rules.append(rule)
        return {
            "faults": [r.to_json() for r in self.rules],
            "down": sorted(r or "*" for r in self.down),
        }

    def set_latency(self, body: dict[str, Any]) -> dict[str, Any]:
        region = body.get("region")
        value = (float(body.get("ms", 0)) / 1000, float(body.get("jitter_ms", 0)) / 1000)
        if region is None:
            # a global setting replaces the per-region ones, so "latency 0" means 0 everywhere
            self.latency = {None: value}
        else:
            self.latency[region] = value
        return {"latency": {k or "*": [v[0] * 1000, v[1] * 1000] for k, v in self.latency.items()}}

    def set_rates(self, body: dict[str, Any]) -> dict[str, Any]:
        for name, rate in (body.get("rates") or {}).items():
            if name == "*":
                self.default_rate = float(rate)
                for region, state in self.regions.items():
                    if region not in self.rates:
                        state.rate = float(rate)
            else:
                self.rates[name] = float(rate)
                self.region(name).rate = float(rate)
        for name, quota in (body.get("max_24h") or {}).items():
            if name == "*":
                self.default_max_24h = float(quota)
                for region, state in self.regions.items():
                    if region not in self.max_24h:
                        state.max_24h = float(quota)
            else:
                self.max_24h[name] = float(quota)
                self.region(name).max_24h = float(quota)
        if "burst" in body:
            self.burst = int(body["burst"])
            for state in self.regions.values():
                state.burst = self.burst
        return {name: state.stats() for name, state in self.regions.items()}


class _Fields(dict[str, str]):
    """``{sender}``, ``{recipient}``, ``{configuration_set}`` of a fault's message, read
    from the SendEmail request only when a message asks for them."""

    def __init__(self, body: bytes) -> None:
        super().__init__()
        try:
            request = json.loads(body) if body else {}
        except ValueError:
            request = {}
        to = (request.get("Destination") or {}).get("ToAddresses") or [""]
        self.update(
            sender=str(request.get("FromEmailAddress", "")),
            recipient=str(to[0]),
            configuration_set=str(request.get("ConfigurationSetName", "")),
        )

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _summary(request: dict[str, Any]) -> bytes:
    """What ``--no-keep-bodies`` keeps of a request: recipients, subject and tags."""
    content = request.get("Content") or {}
    subject = ((content.get("Simple") or {}).get("Subject") or {}).get("Data")
    summary = {
        "Destination": request.get("Destination"),
        "Subject": subject,
        "EmailTags": request.get("EmailTags"),
    }
    return json.dumps(summary, separators=(",", ":")).encode()


def region_of(authorization: bytes) -> str:
    """The region of a SigV4 ``Authorization`` header's credential scope."""
    start = authorization.find(b"Credential=")
    if start < 0:
        return DEFAULT_REGION
    end = authorization.find(b",", start)
    scope = authorization[start + 11 : end if end > 0 else None].split(b"/")
    return scope[2].decode() if len(scope) > 2 else DEFAULT_REGION


class HttpConnection(asyncio.Protocol):
    """HTTP/1.1 over one connection; answers in request order even when delayed."""

    def __init__(self, app: Standin, loop: asyncio.AbstractEventLoop) -> None:
        self.app = app
        self.loop = loop
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.auth = b""
        self.body: list[bytes] = []
        # one slot per request in arrival order: [response bytes or None, close after]
        self.pending: deque[list[Any]] = deque()
        self.timers: set[asyncio.TimerHandle] = set()

    # asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        for timer in self.timers:
            timer.cancel()
        self.timers.clear()

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.write(_error(400, "BadRequestException", "Malformed HTTP request."))
                self.transport.close()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.url = b""
        self.auth = b""
        self.body = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        lowered = name.lower()
        if lowered == b"authorization":
            self.auth = value
        elif lowered == b"expect" and value.lower() == b"100-continue" and self.transport:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        slot: list[Any] = [None, not self.parser.should_keep_alive()]
        self.pending.append(slot)
        body = b"".join(self.body)
        try:
            response, delay = route(self.app, self.parser.get_method(), self.url, self.auth, body)
        except Exception as exc:  # a bug or bad control input must not kill the connection
            response, delay = _error(500, "InternalFailure", f"stand-in error: {exc!r}"), 0.0
        if response is None:
            self._later(delay, self._drop)
        elif delay > 0:
            self._later(delay, self._fill, slot, response)
        else:
            slot[0] = response
            self._flush()

    # responses
    def _later(self, delay: float, callback: Callable[..., None], *args: Any) -> None:
        timer: asyncio.TimerHandle

        def fire() -> None:
            self.timers.discard(timer)
            callback(*args)

        timer = self.loop.call_later(delay, fire)
        self.timers.add(timer)

    def _fill(self, slot: list[Any], response: bytes) -> None:
        slot[0] = response
        self._flush()

    def _flush(self) -> None:
        pending = self.pending
        transport = self.transport
        while pending and pending[0][0] is not None:
            response, close = pending.popleft()
            if transport is None:
                continue
            transport.write(response)
            if close:
                transport.close()
                return

    def _drop(self) -> None:
        if self.transport is not None:
            self.transport.abort()


def route(app: Standin, method: bytes, url: bytes, auth: bytes, body: bytes) -> Reply:
    path, _, query = url.partition(b"?")
    if path == b"/v2/email/outbound-emails" and method == b"POST":
        return app.send_email(region_of(auth), body)
    if path == b"/v2/email/account" and method == b"GET":
        return app.get_account(region_of(auth))
    if path.startswith(SUPPRESSION_PATH):
        status, answer, code = app.suppression_list.handle(
            region_of(auth), method, path, query, body
        )
        return (_error(status, code, answer["message"]) if code else _json(status, answer)), 0.0
    handled = app.account.handle(method, path, query, auth, region_of(auth), body)
    if handled is not None:
        return _response(*handled), app._delay(region_of(auth))
    if path.startswith(b"/_standin/"):
        return control(app, method, path[len(b"/_standin/") :].decode(), query.decode(), body)
    return _error(404, "UnknownOperationException", "Unknown operation."), 0.0


def control(app: Standin, method: bytes, name: str, query: str, body: bytes) -> Reply:
    params = {k: v[-1] for k, v in parse_qs(query).items()}
    try:
        payload = json.loads(body) if body else {}
        if method == b"GET" and name == "messages":
            limit = params.get("limit")
            result = app.messages(
                int(params.get("since", 0)),
                None if limit is None else int(limit),
                params.get("region"),
            )
        elif method == b"GET" and name == "calls":
            result = app.calls(int(params.get("since", 0)))
        elif method == b"GET" and name == "stats":
            result = app.stats()
        elif method == b"GET" and name == "account":
            result = app.account.stats()
        elif method == b"POST" and name == "account":
            result = app.account.configure(payload)
        elif method == b"POST" and name == "receive" and app.simulator is not None:
            result = app.simulator.receive(payload)  # inbound mail (issue 21)
        elif method == b"GET" and name == "simulator":
            result = app.simulator.stats() if app.simulator else {"webhook": None}
        elif method == b"POST" and name == "faults":
            result = app.set_faults(payload)
        elif method == b"POST" and name == "latency":
            result = app.set_latency(payload)
        elif method == b"POST" and name == "rates":
            result = app.set_rates(payload)
        elif method == b"POST" and name == "reset":
            app.reset()
            result = {"ok": True}
        else:
            return _json(
                404, {"error": f"no control endpoint {method.decode()} /_standin/{name}"}
            ), 0.0
    except (ValueError, KeyError, TypeError) as exc:
        return _json(400, {"error": str(exc)}), 0.0
    return _json(200, result), 0.0


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
