"""The SES stand-in's state and SES semantics: SendEmail, GetAccount, per-region rates and
quotas, the recorded calls and the control operations (apart: it knows nothing about sockets)."""

from __future__ import annotations

import json
import random
import secrets
import time
from array import array
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from mailer.local.ses_account import Account
from mailer.local.simulator import Simulator
from mailer.local.standin_faults import FAULTS, FaultMessageFields, FaultRule
from mailer.local.standin_http import Reply, error_answer, http_answer, json_answer
from mailer.local.suppression_list import SuppressionList

DEFAULT_RATE = 100_000.0  # regions without --rate: effectively unlimited
DEFAULT_MAX_24H = 1_000_000_000.0


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
            message = message.format_map(FaultMessageFields(body))
        return error_answer(rule.status or status, rule.code or code, message), delay

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
            return error_answer(
                429, "TooManyRequestsException", "Maximum sending rate exceeded."
            ), delay
        if state.sent >= state.max_24h:
            state.quota_exceeded += 1
            return error_answer(
                400, "LimitExceededException", "Daily message quota exceeded."
            ), delay
        configuration_set = configuration_set_of(body)
        if configuration_set is not None and not self.account.has_set(region, configuration_set):
            message = f"Configuration set <{configuration_set}> does not exist."
            return error_answer(404, "NotFoundException", message), delay
        mode = self.config.record
        simulated = self.simulator is not None and self.simulator.wants(body)
        if mode != "none" or simulated:  # "none" is for the longest runs: not even parsed
            try:
                request = json.loads(body)
            except ValueError:
                return error_answer(
                    400, "BadRequestException", "Request body is not valid JSON."
                ), delay
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
        return http_answer(
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
        return json_answer(
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


def _summary(request: dict[str, Any]) -> bytes:
    """What ``--no-keep-bodies`` keeps of a request: recipients, subject and tags, and the
    ``List-Unsubscribe`` header of bulk mail (``mailer demo`` unsubscribes by mail)."""
    simple = (request.get("Content") or {}).get("Simple") or {}
    subject = (simple.get("Subject") or {}).get("Data")
    summary = {
        "Destination": request.get("Destination"),
        "Subject": subject,
        "EmailTags": request.get("EmailTags"),
    }
    for header in simple.get("Headers") or ():
        if isinstance(header, dict) and header.get("Name") == "List-Unsubscribe":
            summary["ListUnsubscribe"] = header.get("Value")
    return json.dumps(summary, separators=(",", ":")).encode()


def configuration_set_of(body: bytes) -> str | None:
    """The ``ConfigurationSetName`` of a SendEmail body, read without parsing it all."""
    start = body.find(b'"ConfigurationSetName"')
    if start < 0:
        return None
    colon = body.find(b":", start + 22)
    first = body.find(b'"', colon + 1)
    last = body.find(b'"', first + 1)
    if colon < 0 or first < 0 or last < 0:
        return None
    return body[first + 1 : last].decode(errors="replace")
