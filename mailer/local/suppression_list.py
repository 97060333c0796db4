"""The SES account-level suppression list, for the stand-in (``mailer.local.standin``).

SES v2 ListSuppressedDestinations (paginated, filtered by reason and date),
PutSuppressedDestination, GetSuppressedDestination and DeleteSuppressedDestination, per
region as SES keeps them. The list starts empty, as a new account's does: the mailbox
simulator's ``suppressionlist@simulator.amazonses.com`` is SES's own fixture and never on
an account's list.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, unquote

PATH = b"/v2/email/suppression/addresses"
REASONS = ("BOUNCE", "COMPLAINT")
MAX_PAGE = 1000
DEFAULT_PAGE = 100


def _error(status: int, code: str, message: str) -> tuple[int, dict[str, Any], str]:
    return status, {"message": message}, code


@dataclass
class SuppressionList:
    """Each region's list: address (lower-cased) → (address as given, reason, time)."""

    regions: dict[str, dict[str, tuple[str, str, float]]] = field(default_factory=dict)

    def handle(
        self, region: str, method: bytes, path: bytes, query: bytes, body: bytes
    ) -> tuple[int, dict[str, Any], str]:
        """(status, JSON body, error code or "") of a call under :data:`PATH`."""
        listed = self.regions.setdefault(region, {})
        params = parse_qs(query.decode())
        if path == PATH and method == b"GET":
            return self._list(listed, params)
        if path == PATH and method == b"PUT":
            try:
                request = json.loads(body)
                address, reason = str(request["EmailAddress"]), str(request["Reason"])
            except (ValueError, KeyError, TypeError):
                return _error(400, "BadRequestException", "EmailAddress and Reason are required.")
            if reason not in REASONS or "@" not in address:
                return _error(400, "BadRequestException", f"Invalid suppression: {reason}.")
            listed[address.strip().lower()] = (address.strip(), reason, time.time())
            return 200, {}, ""
        if path.startswith(PATH + b"/"):
            address = unquote(path[len(PATH) + 1 :].decode()).strip()
            entry = listed.get(address.lower())
            if entry is None:
                return _error(404, "NotFoundException", f"{address} is not on the list.")
            if method == b"GET":
                return 200, {"SuppressedDestination": _summary(entry) | {"Attributes": {}}}, ""
            if method == b"DELETE":
                del listed[address.lower()]
                return 200, {}, ""
        return _error(404, "UnknownOperationException", "Unknown operation.")

    def _list(
        self, listed: dict[str, tuple[str, str, float]], params: dict[str, list[str]]
    ) -> tuple[int, dict[str, Any], str]:
        reasons = set(params.get("Reason", [])) or set(REASONS)
        try:
            start = _when(params.get("StartDate"))
            end = _when(params.get("EndDate"))
            size = int(params.get("PageSize", [DEFAULT_PAGE])[-1])
            offset = _offset(params.get("NextToken"))
        except ValueError as exc:
            return _error(400, "BadRequestException", str(exc))
        if not 1 <= size <= MAX_PAGE:
            return _error(400, "BadRequestException", f"PageSize must be 1 to {MAX_PAGE}.")
        entries = [
            entry
            for _, entry in sorted(listed.items())
            if entry[1] in reasons
            and (start is None or entry[2] >= start)
            and (end is None or entry[2] <= end)
        ]
        page = entries[offset : offset + size]
        answer: dict[str, Any] = {"SuppressedDestinationSummaries": [_summary(e) for e in page]}
        if offset + size < len(entries):
            answer["NextToken"] = base64.urlsafe_b64encode(str(offset + size).encode()).decode()
        return 200, answer, ""


def _summary(entry: tuple[str, str, float]) -> dict[str, Any]:
    address, reason, when = entry
    return {"EmailAddress": address, "Reason": reason, "LastUpdateTime": when}


def _when(values: list[str] | None) -> float | None:
    if not values:
        return None
    raw = values[-1]
    try:
        return float(raw)
    except ValueError:
        return datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()


def _offset(values: list[str] | None) -> int:
    if not values:
        return 0
    try:
        return int(base64.urlsafe_b64decode(values[-1].encode()).decode())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError("Invalid NextToken.") from exc
