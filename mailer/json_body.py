"""What a JSON request body may hold: parsed once, before any endpoint, and refused with
422 for what PostgreSQL cannot store or Python would turn into a 500 (NUL and unpaired
surrogates in any string or key, non-finite numbers, integers outside 64 bits, nesting
deeper than ``MAX_DEPTH``)."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from starlette.types import Scope

MIN_INT, MAX_INT = -(2**63), 2**63 - 1
MAX_DEPTH = 100  # a segment filter at its own depth limit (20) stays well below
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")  # NUL, lone surrogates


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
