"""What the JSON guard (``mailer.middleware``) costs a request: its strict parse and walk of
the body against the plain ``json.loads`` FastAPI does anyway, per body shape.

    python bench/json_guard.py [--seconds 1.0]

Prints microseconds per body for both and the guard's share (guard / plain parse).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mailer.json_body import parse_json  # noqa: E402

BODIES: dict[str, bytes] = {
    # a transactional send: a template id, a recipient and a handful of data fields
    "transactional (0.3 KB)": json.dumps(
        {
            "template_id": 12,
            "to": "ada@example.com",
            "mail_class": "transactional",
            "data": {"first_name": "Ada", "order": 12345, "total": 99.5, "items": ["a", "b"]},
        }
    ).encode(),
    # a contact with 50 attributes, non-ASCII (so \\u escapes: every string is checked)
    "contact, 50 attributes, escapes (2 KB)": json.dumps(
        {
            "attributes": {f"field_{i}": f"valeur é {i}" for i in range(50)},
            "tags": ["vip", "newsletter"],
        }
    ).encode(),
    # a template version: one big HTML string
    "template html (400 KB)": json.dumps(
        {
            "name": "t",
            "subject": "Hello",
            "html": "<p>" + "x" * 400_000 + "</p>",
        }
    ).encode(),
}


def per_call_us(fn: Callable[[bytes], object], body: bytes, seconds: float) -> float:
    fn(body)
    calls, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        for _ in range(50):
            fn(body)
        calls += 50
    return elapsed / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="per measurement")
    args = parser.parse_args()
    # a segment filter at its depth limit (20)
    nested: dict[str, object] = {"field": "email", "op": "eq", "value": "a@b.test"}
    for _ in range(20):
        nested = {"all": [nested]}
    BODIES["segment filter, depth 20"] = json.dumps({"name": "s", "filter": nested}).encode()
    print(f"{'body':40} {'json.loads':>12} {'guard':>12} {'guard/loads':>12}")
    for name, body in BODIES.items():
        plain = per_call_us(json.loads, body, args.seconds)
        guard = per_call_us(parse_json, body, args.seconds)
        print(f"{name:40} {plain:10.1f}us {guard:10.1f}us {guard / plain:11.2f}x")


if __name__ == "__main__":
    main()
