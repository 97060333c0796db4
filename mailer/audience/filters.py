"""Segment filters: JSON trees compiled to parameterised SQL over ``contacts``.

Groups ``{"all": [...]}``, ``{"any": [...]}``, ``{"not": {...}}``; conditions
``{"field", "op", "value"}`` on ``email``, ``created_at``, ``tags`` or ``attributes.<key>``.
Input only ever becomes bound parameters, never SQL text.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Numeric,
    Text,
    and_,
    case,
    cast,
    false,
    func,
    literal,
    not_,
    or_,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from mailer.errors import Invalid
from mailer.models import Contact

OPS = ("eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "contains", "starts_with",
       "ends_with", "exists")
MAX_DEPTH = 20
MAX_NODES = 500

Path = list[str | int]


def compile_filter(tree: Any) -> ColumnElement[bool]:
    """The WHERE clause for ``tree``; a 422 naming the path of the first bad node."""
    counter = [0]
    return _node(tree, ["filter"], 0, counter)


def _bad(path: Path, message: str) -> Invalid:
    return Invalid.at(path, f"{'.'.join(map(str, path))}: {message}")


def _node(node: Any, path: Path, depth: int, counter: list[int]) -> ColumnElement[bool]:
    counter[0] += 1
    if depth > MAX_DEPTH or counter[0] > MAX_NODES:
        raise _bad(path, f"filter too large (depth ≤ {MAX_DEPTH}, nodes ≤ {MAX_NODES})")
    if not isinstance(node, dict):
        raise _bad(path, "expected an object")
    keys = set(node)
    if keys == {"all"} or keys == {"any"}:
        (kind,) = keys
        items = node[kind]
        if not isinstance(items, list):
            raise _bad([*path, kind], "expected a list")
        parts = [_node(item, [*path, kind, i], depth + 1, counter) for i, item in enumerate(items)]
        if kind == "all":
            return and_(true(), *parts) if parts else true()
        return or_(false(), *parts) if parts else false()
    if keys == {"not"}:
        return not_(_node(node["not"], [*path, "not"], depth + 1, counter))
    if "field" in keys and "op" in keys and keys <= {"field", "op", "value"}:
        return _condition(node, path)
    raise _bad(path, "expected {all: [...]}, {any: [...]}, {not: {...}} or {field, op, value}")


def _condition(node: dict[str, Any], path: Path) -> ColumnElement[bool]:
    field, op = node["field"], node["op"]
    if not isinstance(op, str) or op not in OPS:
        raise _bad([*path, "op"], f"unknown operator {op!r}; one of {', '.join(OPS)}")
    if op != "exists" and "value" not in node:
        raise _bad([*path, "value"], "a value is required")
    value = node.get("value")
    if field == "email":
        return _text_condition(Contact.email, op, value, path, lower=True)
    if field == "created_at":
        return _date_condition(op, value, path)
    if field == "tags":
        return _tags_condition(op, value, path)
    if isinstance(field, str) and field.startswith("attributes.") and len(field) > 11:
        return _attribute_condition(field[11:], op, value, path)
    raise _bad([*path, "field"],
               f"unknown field {field!r}; use email, created_at, tags or attributes.<key>")


def _need(value: Any, kinds: tuple[type, ...], path: Path, what: str) -> None:
    if isinstance(value, bool) and bool not in kinds:
        raise _bad([*path, "value"], f"expected {what}")
    if not isinstance(value, kinds):
        raise _bad([*path, "value"], f"expected {what}")


def _list_of(value: Any, kinds: tuple[type, ...], path: Path, what: str) -> list[Any]:
    if not isinstance(value, list) or not value or len(value) > 10_000:
        raise _bad([*path, "value"], f"expected a non-empty list of {what}")
    for i, item in enumerate(value):
        if isinstance(item, bool) and bool not in kinds or not isinstance(item, kinds):
            raise _bad([*path, "value", i], f"expected {what}")
    return value


def _like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _text_condition(
    column: Any, op: str, value: Any, path: Path, lower: bool = False
) -> ColumnElement[bool]:
    norm = (lambda v: v.strip().lower()) if lower else (lambda v: v)
    if op == "exists":
        return column.is_not(None)
    if op in ("in", "not_in"):
        items = [norm(v) for v in _list_of(value, (str,), path, "strings")]
        expr = column.in_(items)
        return expr if op == "in" else not_(expr)
    _need(value, (str,), path, "a string")
    v = norm(value)
    if op in ("contains", "starts_with", "ends_with"):
        pattern = {"contains": f"%{_like_escape(v)}%", "starts_with": f"{_like_escape(v)}%",
                   "ends_with": f"%{_like_escape(v)}"}[op]
        return column.like(pattern, escape="\\")
    return _compare(column, op, v, path)


def _compare(column: Any, op: str, value: Any, path: Path) -> ColumnElement[bool]:
    if op == "eq":
        return column == value
    if op == "ne":
        return column != value
    if op == "gt":
        return column > value
    if op == "gte":
        return column >= value
    if op == "lt":
        return column < value
    if op == "lte":
        return column <= value
    raise _bad([*path, "op"], f"operator {op!r} does not apply to this field")


def _parse_datetime(value: Any, path: Path) -> datetime:
    if not isinstance(value, str):
        raise _bad([*path, "value"], "expected an ISO 8601 date-time")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise _bad([*path, "value"], "expected an ISO 8601 date-time") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def _date_condition(op: str, value: Any, path: Path) -> ColumnElement[bool]:
    column = Contact.created_at
    if op == "exists":
        return true()
    if op in ("in", "not_in"):
        items = [_parse_datetime(v, [*path, "value", i]) for i, v in
                 enumerate(_list_of(value, (str,), path, "date-times"))]
        expr = column.in_(items)
        return expr if op == "in" else not_(expr)
    if op in ("contains", "starts_with", "ends_with"):
        raise _bad([*path, "op"], f"operator {op!r} does not apply to created_at")
    return _compare(column, op, _parse_datetime(value, path), path)


def _tags_condition(op: str, value: Any, path: Path) -> ColumnElement[bool]:
    tags = Contact.tags
    if op == "exists":
        return func.cardinality(tags) > 0
    if op in ("contains", "eq"):
        _need(value, (str,), path, "a tag")
        return tags.contains(cast([value], ARRAY(Text)))
    if op == "ne":
        _need(value, (str,), path, "a tag")
        return not_(tags.contains(cast([value], ARRAY(Text))))
    if op == "in":
        return tags.overlap(cast(_list_of(value, (str,), path, "tags"), ARRAY(Text)))
    if op == "not_in":
        return not_(tags.overlap(cast(_list_of(value, (str,), path, "tags"), ARRAY(Text))))
    raise _bad([*path, "op"], f"operator {op!r} does not apply to tags")


def _attribute_condition(key: str, op: str, value: Any, path: Path) -> ColumnElement[bool]:
    attrs = Contact.attributes
    if op == "exists":
        return attrs.has_key(key)
    as_text = attrs[key].astext
    if op in ("eq", "ne"):
        if value is None or isinstance(value, bool | int | float | str):
            # JSON equality: "1" and 1 differ, as they do in the contact's data
            expr = attrs.contains(func.jsonb_build_object(literal(key), cast(
                literal(_json(value)), JSONB)))
            return expr if op == "eq" else not_(func.coalesce(expr, false()))
        raise _bad([*path, "value"], "expected a string, number, boolean or null")
    if op in ("in", "not_in"):
        items = _list_of(value, (str, int, float, bool), path, "scalars")
        expr = or_(*[attrs.contains(func.jsonb_build_object(literal(key), cast(
            literal(_json(v)), JSONB))) for v in items])
        return expr if op == "in" else not_(func.coalesce(expr, false()))
    if op in ("gt", "gte", "lt", "lte"):
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise _bad([*path, "value"], "expected a number or a string")
        if isinstance(value, str):
            return _compare(as_text, op, value, path)
        is_number = func.jsonb_typeof(attrs[key]) == "number"
        number = cast(as_text, Numeric)
        # CASE keeps the cast from running on non-numbers
        guarded = case((is_number, number), else_=None)
        return _compare(guarded, op, value, path)
    if op in ("contains", "starts_with", "ends_with"):
        _need(value, (str,), path, "a string")
        return _text_condition(as_text, op, value, path)
    raise _bad([*path, "op"], f"operator {op!r} does not apply to attributes")


def _json(value: Any) -> str:
    return json.dumps(value)


__all__ = ["OPS", "compile_filter"]
