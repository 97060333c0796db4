"""ASGI middleware of the HTTP API: request ids and the last-resort error answer, and the
gate every request body passes.

``RequestContext`` is the outermost layer: every response carries ``X-Request-ID``, and an
exception nothing else handled becomes a logged traceback and a 500 error envelope instead
of a plain-text page or a reset connection.

``BodyGate`` holds each request's body to its route's limit and reads none of it before the
caller is known (see its docstring). A JSON body is read once, before any endpoint, and
refused with 422 for what PostgreSQL cannot hold or Python would turn into a 500: NUL and
unpaired surrogates in any string or key (text and jsonb refuse them), non-finite numbers
(``NaN``, ``Infinity``, ``1e400``), integers outside 64 bits, and nesting deeper than
``MAX_DEPTH``. A NUL in the path or the query string is refused the same way. (A surrogate
*pair* is one character once parsed, and passes.)

:func:`read_body` is the one loop that reads a whole body; the lean handlers of the hot
routes use it too.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mailer.errors import TooLarge, Unauthorized, error_body
from mailer.json_body import BadJson, is_json, parse_json

# the standard library's plain traceback: structlog's console renderer would print every
# frame's locals, API keys included
log = logging.getLogger(__name__)

REQUEST_ID_HEADER = b"x-request-id"
CONNECTION_CLOSE = (b"connection", b"close")
DRAIN_BYTES = 2 << 20  # of a body nobody reads, read and dropped before the answer
_CLIENT_ID = re.compile(rb"[A-Za-z0-9._:-]{1,64}")


async def send_json(
    send: Send, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class RequestContext:
    """A request id on every request (the client's ``X-Request-ID`` when it is sane) and
    the catch-all: an unexpected exception is logged with its traceback and answered
    ``500 {"error": {"code": "internal", "message", "details", "request_id"}}``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or "request_id" in scope.get("state", {}):
            # an outer RequestContext has it already (a lean handler passing a request on)
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(REQUEST_ID_HEADER, b"")
        request_id = given.decode() if _CLIENT_ID.fullmatch(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        header = (REQUEST_ID_HEADER, request_id.encode())
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = {**message, "headers": [*message.get("headers", []), header]}
            await send(message)

        # every structlog line of the request carries its id (bind and reset by token:
        # bound_contextvars scans the whole context twice a request)
        tokens = structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception(
                "unhandled error in %s %s (request id %s)",
                scope["method"],
                scope["path"],
                request_id,
            )
            if started:
                return  # the status line is out: all that is left is to end the stream
            body = error_body("internal", f"internal error; quote request id {request_id}")
            body["error"]["request_id"] = request_id
            await send_json(send_with_id, 500, body)
        finally:
            structlog.contextvars.reset_contextvars(**tokens)


class BodyTooLarge(HTTPException):
    """A body over its route's limit: 413. An ``HTTPException`` so that FastAPI, when it is
    the one reading the body, passes it on to the handler instead of making it a 400."""

    def __init__(self, limit: int) -> None:
        super().__init__(TooLarge.status_code, f"request body over {limit} bytes")
        self.limit = limit


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of a request header (``name`` in lower case, as ASGI gives it)."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def declared_length(scope: Scope) -> int | None:
    """The request's Content-Length, when it sends a sane one."""
    value = header(scope, b"content-length")
    return int(value) if value is not None and value.isdigit() else None


def has_body(scope: Scope) -> bool:
    length = declared_length(scope)
    if length is not None:
        return length > 0
    return any(name == b"transfer-encoding" for name, _ in scope["headers"])


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body, never more than ``limit`` bytes of it held (:class:`BodyTooLarge`
    past it); None when the client went away before sending it all."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def answer_too_large(send: Send, limit: int, *, close: bool = False) -> None:
    """413; ``close``: and the connection closed after it (the rest of the body unread)."""
    body = error_body(TooLarge.code, BodyTooLarge(limit).detail)
    await send_json(send, TooLarge.status_code, body, [CONNECTION_CLOSE] if close else [])


# the caller's key for a raw bearer secret (None: unknown), looked up by the app
Authenticate = Callable[[Scope, str], Awaitable[object | None]]


def bearer(scope: Scope) -> str | None:
    """The secret of an ``Authorization: Bearer <secret>`` header, or None."""
    value = header(scope, b"authorization")
    if value is None:
        return None
    scheme, _, secret = value.decode("latin-1").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        return None
    return secret.strip()


MISSING_KEY = "missing API key: send Authorization: Bearer <key>"
UNKNOWN_KEY = "unknown API key"


class BodyGate:
    """Every request body, held to its route's limit and read only once its caller is known.

    - The limit is the route's own: ``limits`` names exact ``(method, path)`` pairs (the
      CSV import, SNS), every other route has ``default_limit``; a JSON body never more
      than ``default_limit``, whatever the route. A Content-Length over the limit is a 413
      before a byte is read; a body that grows past it, a 413 when it does.
    - Under ``/v1`` the caller's API key is looked up (``authenticate``) before anything
      reads the body: no key or an unknown one is a 401, the body unread. The key is left
      in the request's state (``api_key``) for the route's scope check.
    - A JSON body is read whole (up to its limit), checked (module docstring) and handed
      on unchanged.
    - An answer given while the client is still sending carries ``Connection: close``, so
      the server stops reading what nobody will read (otherwise it reads and discards the
      rest, however large). Up to ``DRAIN_BYTES`` of such a body are read and dropped
      first: a server that closes on unread data resets the connection, and the client
      may lose the answer; a modest body is then answered cleanly.
    """

    def __init__(
        self,
        app: ASGIApp,
        default_limit: int,
        limits: dict[tuple[str, str], int] | None = None,
        authenticate: Authenticate | None = None,
    ) -> None:
        self.app = app
        self.default_limit = default_limit
        self.limits = limits or {}
        self.authenticate = authenticate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        unread = has_body(scope)  # True until the last of the body has been received
        length = declared_length(scope)
        started = False
        seen = 0

        async def send_closing(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if unread:
                    await drain()
                headers = message.get("headers", [])
                if unread and CONNECTION_CLOSE not in headers:
                    message = {**message, "headers": [*headers, CONNECTION_CLOSE]}
            await send(message)

        async def drain() -> None:
            nonlocal unread
            if length is not None and length - seen > DRAIN_BYTES:
                return  # too much to read: closing it is
            dropped = 0
            while unread and dropped <= DRAIN_BYTES:
                message = await receive()
                if message["type"] != "http.request":
                    unread = False
                    return
                dropped += len(message.get("body", b""))
                unread = message.get("more_body", False)

        if (
            "\x00" in scope["path"]
            or b"%00" in scope["query_string"]
            or (b"\x00" in scope["query_string"])
        ):
            await refuse(send_closing, BadJson(["path"], "the URL must not contain NUL (%00)"))
            return
        limit = self.limits.get((scope["method"], scope["path"]), self.default_limit)
        if length is not None and length > limit:
            await answer_too_large(send_closing, limit)
            return
        if self.authenticate is not None and _needs_key(scope["path"]):
            problem = await self._authenticate(scope)
            if problem is not None:
                body = error_body(Unauthorized.code, problem)
                await send_json(send_closing, 401, body, [(b"www-authenticate", b"Bearer")])
                return

        async def limited() -> Message:
            nonlocal seen, unread
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
                unread = message.get("more_body", False)
            else:
                unread = False  # the client went away
            return message

        try:
            if unread and is_json(scope):
                raw = await read_body(limited, min(limit, self.default_limit))
                if raw is None:
                    return  # the client went away: nobody to answer
                if raw:
                    try:
                        parse_json(raw)
                    except BadJson as exc:
                        await refuse(send_closing, exc)
                        return
                await self.app(scope, replay(raw, receive), send_closing)
            else:
                await self.app(scope, limited, send_closing)
        except BodyTooLarge as exc:
            if started:
                raise
            await answer_too_large(send_closing, exc.limit)

    async def _authenticate(self, scope: Scope) -> str | None:
        """None once the caller's key is known (and in the request's state), else why not."""
        assert self.authenticate is not None
        secret = bearer(scope)
        if secret is None:
            return MISSING_KEY
        key = await self.authenticate(scope, secret)
        if key is None:
            return UNKNOWN_KEY
        scope.setdefault("state", {})["api_key"] = key
        return None


def _needs_key(path: str) -> bool:
    return path == "/v1" or path.startswith("/v1/")


def replay(body: bytes, receive: Receive) -> Receive:
    """The body read already, then whatever the client sends next (its going away)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed


async def refuse(send: Send, exc: BadJson) -> None:
    path = [str(p) for p in exc.path]
    message = f"{'.'.join(path)}: {exc.message}"
    await send_json(
        send, 422, error_body("invalid", message, [{"path": path, "message": exc.message}])
    )
