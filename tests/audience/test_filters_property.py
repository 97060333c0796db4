"""Segment filters: the SQL they compile to selects exactly what a plain Python reading of
the same filter selects (README "Segment filters" states the semantics pinned here).

Each example inserts a handful of random contacts in one statement, then evaluates many
random filters over them in one SELECT (one boolean column per filter, which must never be
NULL), and one of them through the count the API uses. Nothing is committed.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mailer.audience import repository
from mailer.audience.filters import compile_filter
from mailer.models import Contact

# --- the Python reading of a filter ------------------------------------------------------------


def _norm(value: str) -> str:
    return value.strip().lower()


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality: numbers by decimal value, true is not 1, containers by contents."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _number(a) or _number(b):
        return _number(a) and _number(b) and Decimal(repr(a)) == Decimal(repr(b))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | dict) or isinstance(b, list | dict):
        return False
    return bool(a == b)  # strings, null


def _order(op: str, a: Any, b: Any) -> bool:
    return {"gt": a > b, "gte": a >= b, "lt": a < b, "lte": a <= b}[op]


def _when(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def evaluate(tree: dict[str, Any], contact: dict[str, Any]) -> bool:
    if "all" in tree:
        return all(evaluate(t, contact) for t in tree["all"])
    if "any" in tree:
        return any(evaluate(t, contact) for t in tree["any"])
    if "not" in tree:
        return not evaluate(tree["not"], contact)
    field, op, value = tree["field"], tree["op"], tree.get("value")
    attributes = contact["attributes"]
    if op == "exists":
        if field == "tags":
            present = bool(contact["tags"])
        elif field.startswith("attributes."):
            present = field[11:] in attributes
        else:
            present = True
        return present == tree.get("value", True)
    if field == "email":
        email = contact["email"]
        if op in ("in", "not_in"):
            return (email in {_norm(v) for v in value}) == (op == "in")
        v = _norm(value)
        if op in ("eq", "ne"):
            return (email == v) == (op == "eq")
        if op == "contains":
            return v in email
        if op == "starts_with":
            return email.startswith(v)
        if op == "ends_with":
            return email.endswith(v)
        return _order(op, email, v)
    if field == "created_at":
        created = contact["created_at"]
        if op in ("in", "not_in"):
            return (created in {_when(v) for v in value}) == (op == "in")
        if op in ("eq", "ne"):
            return (created == _when(value)) == (op == "eq")
        return _order(op, created, _when(value))
    if field == "tags":
        tags = set(contact["tags"])
        if op in ("eq", "contains"):
            return value in tags
        if op == "ne":
            return value not in tags
        return bool(tags & set(value)) == (op == "in")
    key = field[11:]
    present = key in attributes
    a = attributes.get(key)
    if op in ("eq", "ne"):
        return (present and json_equal(a, value)) == (op == "eq")
    if op in ("in", "not_in"):
        return (present and any(json_equal(a, v) for v in value)) == (op == "in")
    if op in ("gt", "gte", "lt", "lte"):
        if _number(value):
            return _number(a) and _order(op, Decimal(repr(a)), Decimal(repr(value)))
        return isinstance(a, str) and _order(op, a, value)
    if op == "contains":
        if isinstance(a, str):
            return value in a
        return isinstance(a, list) and any(json_equal(x, value) for x in a)
    if op == "starts_with":
        return isinstance(a, str) and a.startswith(value)
    return isinstance(a, str) and a.endswith(value)  # ends_with


# --- what is generated --------------------------------------------------------------------------

NASTY = [
    "%",
    "_",
    "\\",
    "'",
    '"',
    "''",
    "\\%",
    "%_",
    "'; DROP TABLE contacts; --",
    "' OR '1'='1",
    "$1",
    ":key",
    "é",
    "ß",
    "İ",
    "日本",
    "😀",
    " ",
    "@",
    ".",
    "a.b",
]
CHARS = st.sampled_from(list("aAbBzZ019 .@-+%_\\'\";:éßİ日😀"))
strings = st.one_of(
    st.text(CHARS, max_size=8),
    st.sampled_from(NASTY),
    st.text(max_size=6).filter(lambda s: "\x00" not in s),
)
KEYS = ["city", "n", "a.b", "it's", "%_\\", 'x"y', "ключ", "'; DROP TABLE contacts; --", "tags"]
TAGS = ["vip", "VIP", "news", "a_b", "a%b", "o'neil", "back\\slash", "日本", ""]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.sampled_from([0, 1, -1, 2]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, 1.0, -0.0, 0.5]),
    strings,
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["x", "y", "k'"]), inner, max_size=2),
    ),
    max_leaves=6,
)
moments = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
)

contact_rows = st.fixed_dictionaries(
    {
        "email": strings.map(lambda s: _norm(s + "@ex.test") if s.count("@") < 2 else _norm(s)),
        "attributes": st.dictionaries(st.sampled_from(KEYS), json_values, max_size=4),
        "tags": st.lists(st.sampled_from(TAGS).filter(bool), max_size=3, unique=True),
        "created_at": moments,
    }
)


def _iso(moment: datetime, style: int) -> str:
    if style == 0:
        return moment.isoformat()
    if style == 1:
        return moment.isoformat().replace("+00:00", "Z")
    if style == 2:
        return moment.replace(tzinfo=None).isoformat()  # naive: read as UTC
    return moment.astimezone(timezone(timedelta(hours=5, minutes=30))).isoformat()


class Ref:
    """A value to be taken from the example's own contacts (resolved after drawing)."""

    def __init__(self, kind: str, *args: int) -> None:
        self.kind, self.args = kind, args


def _ref(kind: str, *ranges: int) -> st.SearchStrategy[Ref]:
    return st.builds(lambda *a: Ref(kind, *a), *[st.integers(0, r) for r in ranges])


def _resolve(value: Any, pool: dict[str, list[Any]]) -> Any:
    if isinstance(value, Ref):
        options = pool[value.kind]
        picked = options[value.args[0] % len(options)]
        if value.kind == "created_at":
            return _iso(picked, value.args[1])
        if value.kind in ("email", "strings") and len(value.args) == 3:
            i, j = value.args[1] % (len(picked) + 1), value.args[2] % (len(picked) + 1)
            return picked[min(i, j) : max(i, j)]  # a piece: prefix, suffix or middle
        if value.kind == "email" and len(value.args) == 2:
            return f"  {picked.upper()} "  # normalised as addresses are
        return picked
    if isinstance(value, list):
        return [_resolve(v, pool) for v in value]
    if isinstance(value, dict):
        return {k: _resolve(v, pool) for k, v in value.items()}
    return value


def conditions() -> st.SearchStrategy[dict[str, Any]]:
    """Valid conditions, with values often drawn from the contacts themselves (Ref)."""
    emails = st.one_of(_ref("email", 9), _ref("email", 9, 40, 40), _ref("email", 9, 1), strings)
    when = st.one_of(_ref("created_at", 9, 3), st.builds(_iso, moments, st.integers(0, 3)))
    values = st.one_of(_ref("values", 19), json_values)
    attr_text = st.one_of(_ref("strings", 19), _ref("strings", 19, 12, 12), strings)
    numbers = st.one_of(
        _ref("numbers", 9), st.integers(-5, 5), st.floats(allow_nan=False, allow_infinity=False)
    )
    exists = st.one_of(st.just({}), st.booleans().map(lambda b: {"value": b}))

    def cond(field: Any, op: str, value: Any = None) -> st.SearchStrategy[dict[str, Any]]:
        base = st.builds(lambda f: {"field": f, "op": op}, field)
        if op == "exists":
            return st.builds(lambda b, e: {**b, **e}, base, exists)
        return st.builds(lambda b, v: {**b, "value": v}, base, value)

    email, created, tags = st.just("email"), st.just("created_at"), st.just("tags")
    attr = st.sampled_from(KEYS).map(lambda k: f"attributes.{k}")
    order = ["gt", "gte", "lt", "lte"]
    return st.one_of(
        *[
            cond(email, op, emails)
            for op in ["eq", "ne", "contains", "starts_with", "ends_with", *order]
        ],
        *[cond(email, op, st.lists(emails, min_size=1, max_size=3)) for op in ["in", "not_in"]],
        cond(email, "exists"),
        *[cond(created, op, when) for op in ["eq", "ne", *order]],
        *[cond(created, op, st.lists(when, min_size=1, max_size=3)) for op in ["in", "not_in"]],
        cond(created, "exists"),
        *[cond(tags, op, st.sampled_from(TAGS)) for op in ["eq", "ne", "contains"]],
        *[
            cond(tags, op, st.lists(st.sampled_from(TAGS), min_size=1, max_size=3))
            for op in ["in", "not_in"]
        ],
        cond(tags, "exists"),
        *[cond(attr, op, values) for op in ["eq", "ne"]],
        *[cond(attr, op, st.lists(values, min_size=1, max_size=3)) for op in ["in", "not_in"]],
        *[cond(attr, op, st.one_of(numbers, attr_text)) for op in order],
        *[cond(attr, op, attr_text) for op in ["contains", "starts_with", "ends_with"]],
        cond(attr, "exists"),
    )


filters = st.recursive(
    conditions(),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda xs: {"all": xs}),
        st.lists(inner, max_size=3).map(lambda xs: {"any": xs}),
        inner.map(lambda x: {"not": x}),
    ),
    max_leaves=8,
)


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, list):
        return [x for v in value for x in _leaves(v)]
    if isinstance(value, dict):
        return [x for v in value.values() for x in _leaves(v)]
    return [value]


def _pool(contacts: list[dict[str, Any]]) -> dict[str, list[Any]]:
    values: list[Any] = [v for c in contacts for v in c["attributes"].values()] or [None]
    leaves = [x for v in values for x in _leaves(v)]
    return {
        "email": [c["email"] for c in contacts] or ["a@ex.test"],
        "created_at": [c["created_at"] for c in contacts] or [datetime(2025, 1, 1, tzinfo=UTC)],
        "values": values,
        "strings": [x for x in leaves if isinstance(x, str)] or ["x"],
        "numbers": [x for x in leaves if _number(x)] or [0],
    }


_INSERT = text(
    """
    INSERT INTO contacts (id, email, attributes, tags, created_at)
    SELECT r.id, r.email, r.attributes, r.tags, r.created_at
      FROM jsonb_to_recordset(CAST(:rows AS jsonb))
           AS r(id bigint, email text, attributes jsonb, tags text[], created_at timestamptz)
    """
)


async def _check(
    sessionmaker: async_sessionmaker[AsyncSession],
    contacts: list[dict[str, Any]],
    trees: list[dict[str, Any]],
) -> None:
    rows = [
        {**c, "id": i + 1, "created_at": c["created_at"].isoformat()}
        for i, c in enumerate(contacts)
    ]
    async with sessionmaker() as session:
        try:
            await session.execute(text("DELETE FROM contacts"))
            if rows:
                await session.execute(_INSERT, {"rows": json.dumps(rows)})
            columns = [compile_filter(t).label(f"f{i}") for i, t in enumerate(trees)]
            result = await session.execute(select(Contact.id, *columns).order_by(Contact.id))
            got = {row[0]: list(row[1:]) for row in result}
            assert sorted(got) == [r["id"] for r in rows]
            for i, tree in enumerate(trees):
                for row, contact in zip(rows, contacts, strict=True):
                    expected = evaluate(tree, contact)
                    assert got[row["id"]][i] is expected, (tree, contact, got[row["id"]][i])
            # the WHERE clause the count endpoint runs agrees too
            matching, eligible = await repository.count(session, compile_filter(trees[0]))
            assert matching == eligible == sum(evaluate(trees[0], c) for c in contacts)
        finally:
            await session.rollback()


@settings(
    max_examples=500,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(
    contacts=st.lists(contact_rows, max_size=10, unique_by=lambda c: c["email"]),
    trees=st.lists(filters, min_size=12, max_size=12),
)
async def test_sql_selects_what_the_python_reading_selects(sessionmaker, contacts, trees):
    pool = _pool(contacts)
    await _check(sessionmaker, contacts, [_resolve(t, pool) for t in trees])


async def test_the_semantics_written_in_the_readme(sessionmaker):
    """A few fixed cases, as the README states them."""
    day = datetime(2026, 1, 1, tzinfo=UTC)
    people = [
        {
            "email": "ada@example.com",
            "attributes": {"n": 1, "city": "Paris", "k": ["golf"]},
            "tags": ["vip"],
            "created_at": day,
        },
        {
            "email": "bob@example.org",
            "attributes": {"n": "1", "city": "paris", "k": None},
            "tags": [],
            "created_at": day,
        },
        {"email": "cy@example.com", "attributes": {"n": 1.0}, "tags": ["VIP"], "created_at": day},
    ]
    cases = [
        ({"field": "attributes.n", "op": "eq", "value": 1}, [True, False, True]),
        ({"field": "attributes.n", "op": "eq", "value": True}, [False, False, False]),
        ({"field": "attributes.n", "op": "gt", "value": 0}, [True, False, True]),
        ({"field": "attributes.city", "op": "contains", "value": "ar"}, [True, True, False]),
        ({"field": "attributes.city", "op": "starts_with", "value": "P"}, [True, False, False]),
        ({"field": "attributes.city", "op": "ne", "value": "Paris"}, [False, True, True]),
        ({"field": "attributes.k", "op": "contains", "value": "golf"}, [True, False, False]),
        ({"field": "attributes.k", "op": "exists"}, [True, True, False]),
        ({"field": "attributes.k", "op": "exists", "value": False}, [False, False, True]),
        ({"field": "email", "op": "ends_with", "value": "@EXAMPLE.com"}, [True, False, True]),
        ({"field": "tags", "op": "contains", "value": "vip"}, [True, False, False]),
        ({"field": "tags", "op": "exists"}, [True, False, True]),
    ]
    for tree, expected in cases:
        assert [evaluate(tree, p) for p in people] == expected, tree
    await _check(sessionmaker, people, [tree for tree, _ in cases])
