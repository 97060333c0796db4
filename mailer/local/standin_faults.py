"""The SES stand-in's programmable faults: each kind's SES answer and one rule of the schedule
(apart from the SES semantics that consult them, so the fault vocabulary reads in one place)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

DEFAULT_HOLD_S = 30.0  # how long a "timeout" fault holds the request before closing


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


class FaultMessageFields(dict[str, str]):
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
