"""Control clients for the SES stand-in (``mailer.local.standin``), sync and async.

control = StandinControl("http://127.0.0.1:8025")
control.set_faults([fault("throttle", count=3, region="us-east-1")])
control.set_latency(50, jitter_ms=10)
control.stats()["regions"]["us-east-1"]["sent"]
"""

from __future__ import annotations

import time
from typing import Any

import httpx

FAULT_KINDS = (
    "throttle",  # 429 TooManyRequestsException
    "error500",  # 500 InternalFailure
    "timeout",  # hold the request hold_s seconds, then drop the connection unanswered
    "reject",  # 400 MessageRejected
    "paused",  # 400 SendingPausedException
    "suspended",  # 400 AccountSuspendedException
    "quota",  # 400 LimitExceededException (daily quota)
    "region_down",  # every call of the region answers 500 until the faults are cleared
    "credentials",  # 403 UnrecognizedClientException (credentials refused)
    "unverified_sender",  # 400 MessageRejected naming the sender as not verified
    "no_configuration_set",  # 404 NotFoundException for the configuration set
    "error",  # any answer: ``code``, ``status`` and ``message`` given
)


def fault(
    kind: str,
    *,
    count: int | None = None,
    probability: float | None = None,
    region: str | None = None,
    message: str | None = None,
    hold_s: float | None = None,
    code: str | None = None,
    status: int | None = None,
    for_s: float | None = None,
) -> dict[str, Any]:
    """One fault rule: the next ``count`` SendEmail calls, each call with ``probability``,
    or every call until cleared (neither given); ``for_s`` ends it that many seconds
    after it is set. ``region=None`` means every region. ``code``/``status`` set the SES
    error answered (kind ``error`` needs both); ``message`` may name ``{sender}``,
    ``{recipient}`` or ``{configuration_set}`` of the request."""
    if kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault kind {kind!r}")
    if kind == "error" and (code is None or status is None):
        raise ValueError("fault kind 'error' needs a code and a status")
    rule: dict[str, Any] = {"kind": kind, "region": region}
    for name, value in (("code", code), ("status", status), ("for_s", for_s)):
        if value is not None:
            rule[name] = value
    if count is not None:
        rule["count"] = count
    if probability is not None:
        rule["probability"] = probability
    if message is not None:
        rule["message"] = message
    if hold_s is not None:
        rule["hold_s"] = hold_s
    return rule


def _latency_body(ms: float, jitter_ms: float, region: str | None) -> dict[str, Any]:
    return {"ms": ms, "jitter_ms": jitter_ms, "region": region}


def _rates_body(
    rates: dict[str, float] | None, max_24h: dict[str, float] | None, burst: int | None
) -> dict[str, Any]:
    body: dict[str, Any] = {"rates": rates or {}, "max_24h": max_24h or {}}
    if burst is not None:
        body["burst"] = burst
    return body


def _messages_params(since: int, limit: int | None, region: str | None) -> dict[str, Any]:
    params: dict[str, Any] = {"since": since}
    if limit is not None:
        params["limit"] = limit
    if region is not None:
        params["region"] = region
    return params


class StandinControl:
    """Synchronous control of a running stand-in (tests, benchmarks)."""

    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url + "/_standin", timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def _get(self, path: str, **params: Any) -> Any:
        response = self._http.get(path, params=params)
        response.raise_for_status()
        return response.json()

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        response = self._http.post(path, json=body)
        response.raise_for_status()
        return response.json()

    def messages(
        self, since: int = 0, *, limit: int | None = None, region: str | None = None
    ) -> list[dict[str, Any]]:
        """Recorded sends with ``seq`` greater than ``since``, oldest first."""
        return self._get("/messages", **_messages_params(since, limit, region))["messages"]

    def calls(self, since: int = 0) -> list[dict[str, Any]]:
        """``{seq, t, region}`` of each accepted SendEmail; ``t`` is ``time.monotonic()``."""
        return self._get("/calls", since=since)["calls"]

    def stats(self) -> dict[str, Any]:
        return self._get("/stats")

    def simulator(self) -> dict[str, Any]:
        """The mailbox simulator's webhook and counters (published, failed, pending)."""
        return self._get("/simulator")

    def sent(self, region: str | None = None) -> int:
        stats = self.stats()
        if region is None:
            return int(stats["totals"]["sent"])
        return int(stats["regions"].get(region, {}).get("sent", 0))

    def set_faults(self, faults: list[dict[str, Any]], *, append: bool = False) -> Any:
        """Replace (or extend) the fault schedule; build entries with :func:`fault`."""
        return self._post("/faults", {"faults": faults, "append": append})

    def clear_faults(self) -> Any:
        return self.set_faults([])

    def set_latency(self, ms: float, *, jitter_ms: float = 0.0, region: str | None = None) -> Any:
        """Added delay per SES call; a global setting replaces per-region ones."""
        return self._post("/latency", _latency_body(ms, jitter_ms, region))

    def set_rates(
        self,
        rates: dict[str, float] | None = None,
        *,
        max_24h: dict[str, float] | None = None,
        burst: int | None = None,
    ) -> Any:
        """MaxSendRate (and Max24HourSend) per region; key ``"*"`` sets the default."""
        return self._post("/rates", _rates_body(rates, max_24h, burst))

    def receive(self, to: list[str], subject: str, sender: str = "reader@example.test") -> Any:
        """Mail received by SES: published as a ``Received`` notification to the webhook."""
        return self._post("/receive", {"to": to, "subject": subject, "from": sender})

    def reset(self) -> Any:
        """Forget sends, counters, faults and runtime settings (back to the CLI flags)."""
        return self._post("/reset", {})

    def wait_for_sent(self, count: int, timeout: float = 10.0, region: str | None = None) -> int:
        """Poll until at least ``count`` sends were accepted; returns the number seen."""
        deadline = time.monotonic() + timeout
        while True:
            seen = self.sent(region)
            if seen >= count or time.monotonic() > deadline:
                return seen
            time.sleep(0.02)

    def __enter__(self) -> StandinControl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncStandinControl:
    """The same control API for async tests and benchmarks."""

    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(base_url=self.base_url + "/_standin", timeout=timeout)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _get(self, path: str, **params: Any) -> Any:
        response = await self._http.get(path, params=params)
        response.raise_for_status()
        return response.json()

    async def _post(self, path: str, body: dict[str, Any]) -> Any:
        response = await self._http.post(path, json=body)
        response.raise_for_status()
        return response.json()

    async def messages(
        self, since: int = 0, *, limit: int | None = None, region: str | None = None
    ) -> list[dict[str, Any]]:
        body = await self._get("/messages", **_messages_params(since, limit, region))
        return body["messages"]  # type: ignore[no-any-return]

    async def calls(self, since: int = 0) -> list[dict[str, Any]]:
        return (await self._get("/calls", since=since))["calls"]  # type: ignore[no-any-return]

    async def stats(self) -> dict[str, Any]:
        return await self._get("/stats")  # type: ignore[no-any-return]

    async def sent(self, region: str | None = None) -> int:
        stats = await self.stats()
        if region is None:
            return int(stats["totals"]["sent"])
        return int(stats["regions"].get(region, {}).get("sent", 0))

    async def set_faults(self, faults: list[dict[str, Any]], *, append: bool = False) -> Any:
        return await self._post("/faults", {"faults": faults, "append": append})

    async def clear_faults(self) -> Any:
        return await self.set_faults([])

    async def set_latency(
        self, ms: float, *, jitter_ms: float = 0.0, region: str | None = None
    ) -> Any:
        return await self._post("/latency", _latency_body(ms, jitter_ms, region))

    async def set_rates(
        self,
        rates: dict[str, float] | None = None,
        *,
        max_24h: dict[str, float] | None = None,
        burst: int | None = None,
    ) -> Any:
        return await self._post("/rates", _rates_body(rates, max_24h, burst))

    async def receive(
        self, to: list[str], subject: str, sender: str = "reader@example.test"
    ) -> Any:
        return await self._post("/receive", {"to": to, "subject": subject, "from": sender})

    async def reset(self) -> Any:
        return await self._post("/reset", {})
