"""The SNS topic's access policy: SES may publish to it, from this account only.

SES publishes the configuration sets' events and the unsubscribe receipt rule's mail to
the topic as the service principal ``ses.amazonaws.com``; the topic policy allows exactly
that, with the confused-deputy conditions AWS recommends: ``aws:SourceAccount`` (the
topic's own account) and ``aws:SourceArn`` (the configuration sets named in
``MAILER_CONFIGURATION_SETS`` and the ``mailer-unsubscribe`` receipt rule, in the topic's
region). The statement has a ``Sid`` of its own and is merged into whatever policy the
topic has (SNS's default statement for the owner, an operator's own statements are kept),
so that ``mailer ses setup`` can tell "in place" from "drifted" and a second run changes
nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

SID = "mailer-ses-publish"


def statement(topic_arn: str, configuration_sets: Sequence[str], rule_name: str) -> dict[str, Any]:
    """Our statement for ``topic_arn`` (``arn:aws:sns:<region>:<account>:<name>``)."""
    region, account = topic_arn.split(":")[3:5]
    sources = [
        *(
            f"arn:aws:ses:{region}:{account}:configuration-set/{name}"
            for name in configuration_sets
        ),
        f"arn:aws:ses:{region}:{account}:receipt-rule-set/*:receipt-rule/{rule_name}",
    ]
    return {
        "Sid": SID,
        "Effect": "Allow",
        "Principal": {"Service": "ses.amazonaws.com"},
        "Action": "SNS:Publish",
        "Resource": topic_arn,
        "Condition": {
            "StringEquals": {"aws:SourceAccount": account},
            "ArnLike": {"aws:SourceArn": sources},
        },
    }


def parse(raw: str | None) -> dict[str, Any] | None:
    """A topic's ``Policy`` attribute as a document; None when absent or unreadable."""
    if not raw:
        return None
    try:
        document = json.loads(raw)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def _normal(value: Any) -> Any:
    """A policy value compared by meaning: ``"a"`` and ``["a"]`` alike, lists unordered."""
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    if isinstance(value, list):
        items = sorted({json.dumps(_normal(v), sort_keys=True) for v in value})
        return json.loads(items[0]) if len(items) == 1 else items
    return value


def ours(document: dict[str, Any] | None) -> dict[str, Any] | None:
    """Our statement in ``document``, if it holds one."""
    statements = (document or {}).get("Statement") or []
    if isinstance(statements, dict):
        statements = [statements]
    return next((s for s in statements if isinstance(s, dict) and s.get("Sid") == SID), None)


def in_place(document: dict[str, Any] | None, wanted: dict[str, Any]) -> bool:
    found = ours(document)
    return found is not None and _normal(found) == _normal(wanted)


def merged(document: dict[str, Any] | None, wanted: dict[str, Any]) -> dict[str, Any]:
    """``document`` with our statement added or replaced, every other statement kept."""
    base = dict(document or {"Version": "2008-10-17", "Id": "mailer-ses-events"})
    statements = base.get("Statement") or []
    if isinstance(statements, dict):
        statements = [statements]
    base["Statement"] = [
        s for s in statements if not (isinstance(s, dict) and s.get("Sid") == SID)
    ] + [wanted]
    return base
