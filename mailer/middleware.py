"""ASGI middleware of the HTTP API: request ids and the last-resort error answer, and the
guard that refuses JSON no endpoint can store.

``RequestContext`` is the outermost layer: every response carries ``X-Request-ID``, and an
exception nothing else handled becomes a logged traceback and a 500 error envelope instead
of a plain-text page or a reset connection.

``JsonGuard`` reads a JSON body once, before any endpoint, and answers 422 for what
PostgreSQL cannot hold or Python would turn into a 500: NUL and unpaired surrogates in any
string or key (text and jsonb refuse them), non-finite numbers (``NaN``, ``Infinity``,
``1e400``), integers outside 64 bits, and nesting deeper than ``MAX_DEPTH``. A NUL in the
path or the query string is refused the same way; a JSON body over the body limit is a 413.
(A surrogate *pair* is one character once parsed, and passes.)
"""

from __future__ import annotations

import json
import logging
import math
import re
import uuid
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mailer.errors import error_body

# the standard library's plain traceback: structlog's console renderer would print every
# frame's locals, API keys included
log = logging.getLogger(__name__)

REQUEST_ID_HEADER = b"x-request-id"
MAX_DEPTH = 100  # a segment filter at its own depth limit (20) stays well below
MIN_INT, MAX_INT = -(2**63), 2**63 - 1
_CLIENT_ID = re.compile(rb"[A-Za-z0-9._:-]{1,64}")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")  # NUL, lone surrogates


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


class BadJson(Exception):
    def __init__(self, path: list[str | int], message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


def parse_json(body: bytes) -> Any:
    """``body`` parsed, or :class:`BadJson` naming the first value no endpoint may get."""
    try:
        value = json.loads(body)
    except json.JSONDecodeError as exc:
        raise BadJson(["body", exc.pos], f"invalid JSON: {exc.msg}") from None
    except UnicodeDecodeError:
        raise BadJson(["body"], "the body is not UTF-8") from None
    except RecursionError:
        raise BadJson(["body"], f"nested deeper than {MAX_DEPTH} levels") from None
    except ValueError:  # an integer of more than 4300 digits
        raise BadJson(["body"], "a number is out of range; integers must fit in 64 bits") from None
    # NUL and surrogates can only arrive as \u escapes: without one, no string to look at
    check_strings = b"\\u" in body
    if not _fine(value, 0, check_strings):
        raise _first_problem(value, check_strings)
    return value


def _fine(node: Any, depth: int, check_strings: bool) -> bool:
    """The fast pass: True when nothing in ``node`` is refused (no paths kept)."""
    kind = type(node)
    if kind is str:
        return not (check_strings and _UNSTORABLE.search(node))
    if kind is int:
        return MIN_INT <= node <= MAX_INT
    if kind is float:
        return math.isfinite(node)  # NaN, Infinity and 1e400 (parsed as inf) are not
    if kind is dict:
        if depth >= MAX_DEPTH:
            return False
        if check_strings and any(_UNSTORABLE.search(key) for key in node):
            return False
        return all(_fine(item, depth + 1, check_strings) for item in node.values())
    if kind is list:
        return depth < MAX_DEPTH and all(_fine(item, depth + 1, check_strings) for item in node)
    return True  # true, false, null


def _first_problem(value: Any, check_strings: bool) -> BadJson:
    """The slow pass, once :func:`_fine` said no: where the first refused value is."""
    stack: list[tuple[Any, list[str | int]]] = [(value, ["body"])]
    while stack:
        node, path = stack.pop()
        if isinstance(node, dict | list) and len(path) > MAX_DEPTH:
            return BadJson(path[:10], f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, dict):
            for key, item in node.items():
                if check_strings and _UNSTORABLE.search(key):
                    printable = key.encode("utf-8", "backslashreplace").decode()
                    return BadJson(
                        [*path, printable], "keys must not contain NUL or unpaired surrogates"
                    )
                stack.append((item, [*path, key]))
        elif isinstance(node, list):
            stack.extend((item, [*path, i]) for i, item in enumerate(node))
        elif isinstance(node, str) and check_strings and _UNSTORABLE.search(node):
            return BadJson(path, "text must not contain NUL (\\u0000) or unpaired surrogates")
        elif isinstance(node, float) and not math.isfinite(node):
            return BadJson(path, f"{node} is not a number JSON may carry; numbers must be finite")
        elif type(node) is int and not MIN_INT <= node <= MAX_INT:
            return BadJson(path, "the integer is out of range; integers must fit in 64 bits")
    return BadJson(["body"], "invalid JSON")


def is_json(scope: Scope) -> bool:
    content_type = dict(scope["headers"]).get(b"content-type", b"").split(b";")[0].strip()
    return content_type == b"application/json" or content_type.endswith(b"+json")


class JsonGuard:
    """Refuse (422) a JSON body, path or query no endpoint may be handed (module docstring);
    a body that passes is replayed to the app unchanged.

    A JSON body over ``max_bytes`` is a 413 whatever the route: the guard runs before the
    API key is looked at, and must not parse a CSV import's allowance of JSON for anyone.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if (
            "\x00" in scope["path"]
            or b"%00" in scope["query_string"]
            or (b"\x00" in scope["query_string"])
        ):
            await refuse(send, BadJson(["path"], "the URL must not contain NUL (%00)"))
            return
        if not is_json(scope):
            await self.app(scope, receive, send)
            return
        chunks = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([], message, receive), send)
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                too_large = error_body("too_large", f"JSON body over {self.max_bytes} bytes")
                await send_json(send, 413, too_large)
                return
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if body:
            try:
                parse_json(body)
            except BadJson as exc:
                await refuse(send, exc)
                return
        await self.app(scope, _replay([body], None, receive), send)


def _replay(chunks: list[bytes], last: Message | None, receive: Receive) -> Receive:
    pending: list[Message] = [
        {"type": "http.request", "body": chunk, "more_body": False} for chunk in chunks
    ]
    if last is not None:
        pending.append(last)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed


async def refuse(send: Send, exc: BadJson) -> None:
    path = [str(p) for p in exc.path]
    message = f"{'.'.join(path)}: {exc.message}"
    await send_json(
        send, 422, error_body("invalid", message, [{"path": path, "message": exc.message}])
    )
