"""The SES stand-in's HTTP side: the asyncio protocol over httptools, the routing of SES and
``/_standin/`` control calls, and the encoding of answers (apart: the SES state knows no sockets).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

import httptools

from mailer.local.suppression_list import PATH as SUPPRESSION_PATH

if TYPE_CHECKING:  # the SES side imports this module's answers
    from mailer.local.standin_ses import Standin

DEFAULT_REGION = "us-east-1"


_REASONS = {
    200: b"OK",
    400: b"Bad Request",
    401: b"Unauthorized",
    403: b"Forbidden",
    404: b"Not Found",
    429: b"Too Many Requests",
    500: b"Internal Server Error",
}


def http_answer(status: int, body: bytes, headers: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n"
        % (status, _REASONS.get(status, b"Unknown"), len(body), headers)
    ) + body


# (status, body, extra header lines): an answer before it is written out
Answer = tuple[int, bytes, bytes]


def answer(payload: Any, status: int = 200) -> Answer:
    return status, json.dumps(payload).encode(), b""


def error(status: int, code: str, message: str) -> Answer:
    """An SES v2 error: its code in ``x-amzn-ErrorType``, its message in the body."""
    body = json.dumps({"message": message}).encode()
    return status, body, b"x-amzn-ErrorType: %s:\r\n" % code.encode()


def query_answer(xmlns: str, action: str, inner: str = "") -> Answer:
    """An answer of a Query-protocol service (SNS, SES v1): ``<ActionResponse>`` XML."""
    body = (
        f'<{action}Response xmlns="{xmlns}"><{action}Result>{inner}</{action}Result>'
        f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
        f"</{action}Response>"
    )
    return 200, body.encode(), b""


def query_error(xmlns: str, status: int, code: str, message: str) -> Answer:
    """An error of a Query-protocol service: ``<ErrorResponse>`` XML, the sender's fault."""
    body = (
        f'<ErrorResponse xmlns="{xmlns}"><Error><Type>Sender</Type><Code>{code}</Code>'
        f"<Message>{escape(message)}</Message></Error><RequestId>{uuid.uuid4()}</RequestId>"
        "</ErrorResponse>"
    )
    return status, body.encode(), b""


def json_answer(status: int, payload: Any) -> bytes:
    return http_answer(*answer(payload, status))


def error_answer(status: int, code: str, message: str) -> bytes:
    return http_answer(*error(status, code, message))


# What a handler hands back: the bytes to send, after a delay (s); None bytes = hold
# the request for ``delay`` seconds and then drop the connection unanswered.
Reply = tuple[bytes | None, float]


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
                self.transport.write(
                    error_answer(400, "BadRequestException", "Malformed HTTP request.")
                )
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
            response, delay = error_answer(500, "InternalFailure", f"stand-in error: {exc!r}"), 0.0
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
        return (
            error_answer(status, code, answer["message"]) if code else json_answer(status, answer)
        ), 0.0
    handled = app.account.handle(method, path, query, auth, region_of(auth), body)
    if handled is not None:
        return http_answer(*handled), app._delay(region_of(auth))
    if path.startswith(b"/_standin/"):
        return control(app, method, path[len(b"/_standin/") :].decode(), query.decode(), body)
    return error_answer(404, "UnknownOperationException", "Unknown operation."), 0.0


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
            return json_answer(
                404, {"error": f"no control endpoint {method.decode()} /_standin/{name}"}
            ), 0.0
    except (ValueError, KeyError, TypeError) as exc:
        return json_answer(400, {"error": str(exc)}), 0.0
    return json_answer(200, result), 0.0
