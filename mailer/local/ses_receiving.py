"""SES email receiving (SES v1, the Query API) for the local emulator: the receipt rule sets
and rules ``mailer ses setup --inbound-unsubscribe`` reads and writes
(``mailer.ses.inbound_setup``), so that it runs against ``mailer dev`` as against AWS.

DescribeActiveReceiptRuleSet, ListReceiptRuleSets, DescribeReceiptRuleSet,
CreateReceiptRuleSet, SetActiveReceiptRuleSet, CreateReceiptRule, UpdateReceiptRule and
DeleteReceiptRule, per region; form-encoded requests, XML answers, SES's error codes
(``AlreadyExists``, ``RuleSetDoesNotExist``, ``RuleDoesNotExist``, ``InvalidSnsTopic``). Mail
itself is received on ``POST /_standin/receive`` (``mailer.local.simulator``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from mailer.local.standin_http import Answer, query_answer, query_error

XMLNS = "http://ses.amazonaws.com/doc/2010-12-01/"
_MEMBER = re.compile(r"member\.(\d+)")


def _xml(action: str, inner: str = "") -> Answer:
    return query_answer(XMLNS, action, inner)


def _error(code: str, message: str) -> Answer:
    return query_error(XMLNS, 400, code, message)


def nested(params: dict[str, str], prefix: str) -> Any:
    """The structure under ``prefix`` of Query parameters (``Rule.Recipients.member.1``):
    dicts by name, lists by ``member.N``, ``true``/``false`` as booleans."""
    tree: dict[str, Any] = {}
    for key, value in params.items():
        if not key.startswith(prefix + "."):
            continue
        path = key[len(prefix) + 1 :]
        path = _MEMBER.sub(lambda m: f"#{int(m.group(1)):06d}", path)
        node = tree
        parts = path.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = {"true": True, "false": False}.get(value, value)

    def lists(node: Any) -> Any:
        if not isinstance(node, dict):
            return node
        if node and all(k.startswith("#") for k in node):
            return [lists(node[k]) for k in sorted(node)]
        return {k: lists(v) for k, v in node.items()}

    return lists(tree)


def to_xml(value: Any) -> str:
    """A rule (or any part of one) as SES writes it: lists as ``<member>`` elements."""
    if isinstance(value, dict):
        return "".join(f"<{k}>{to_xml(v)}</{k}>" for k, v in value.items())
    if isinstance(value, list):
        return "".join(f"<member>{to_xml(v)}</member>" for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return escape(str(value))


@dataclass
class RuleSet:
    name: str
    created: str = field(
        default_factory=lambda: datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    )
    rules: list[dict[str, Any]] = field(default_factory=list)

    def metadata(self) -> str:
        return to_xml({"Name": self.name, "CreatedTimestamp": self.created})


@dataclass
class RegionReceiving:
    sets: dict[str, RuleSet] = field(default_factory=dict)
    active: str | None = None


class Receiving:
    """The receipt rule sets of every region; ``topic_exists`` checks an SNS action."""

    def __init__(self, topic_exists: Callable[[str], bool]) -> None:
        self.topic_exists = topic_exists
        self.reset()

    def reset(self) -> None:
        self.regions: dict[str, RegionReceiving] = {}

    def region(self, name: str) -> RegionReceiving:
        return self.regions.setdefault(name, RegionReceiving())

    def stats(self) -> dict[str, Any]:
        return {
            name: {"active": state.active, "rule_sets": {n: s.rules for n, s in state.sets.items()}}
            for name, state in self.regions.items()
        }

    def handle(self, region: str, body: bytes) -> Answer:
        params = {k: v[-1] for k, v in parse_qs(body.decode(errors="replace")).items()}
        action = params.get("Action", "")
        handler = getattr(self, f"op_{action}", None)
        if handler is None:
            return _error("InvalidAction", f"The action {action} is not valid.")
        answer: Answer = handler(self.region(region), params)
        return answer

    def _set(self, state: RegionReceiving, name: str) -> RuleSet | None:
        return state.sets.get(name)

    def _bad_rule(self, rule: Any) -> Answer | None:
        if not isinstance(rule, dict) or not rule.get("Name"):
            return _error("InvalidParameterValue", "Rule.Name is required.")
        for action in rule.get("Actions") or []:
            topic = (action.get("SNSAction") or {}).get("TopicArn")
            if topic is not None and not self.topic_exists(topic):
                return _error("InvalidSnsTopic", f"Could not publish to SNS topic <{topic}>.")
        return None

    # -- rule sets -------------------------------------------------------------------------

    def op_DescribeActiveReceiptRuleSet(self, state: RegionReceiving, p: dict[str, str]) -> Answer:  # noqa: N802
        active = state.sets.get(state.active or "")
        if active is None:
            return _xml("DescribeActiveReceiptRuleSet")
        inner = f"<Metadata>{active.metadata()}</Metadata><Rules>{to_xml(active.rules)}</Rules>"
        return _xml("DescribeActiveReceiptRuleSet", inner)

    def op_ListReceiptRuleSets(self, state: RegionReceiving, p: dict[str, str]) -> Answer:  # noqa: N802
        members = "".join(f"<member>{s.metadata()}</member>" for s in state.sets.values())
        return _xml("ListReceiptRuleSets", f"<RuleSets>{members}</RuleSets>")

    def op_DescribeReceiptRuleSet(self, state: RegionReceiving, p: dict[str, str]) -> Answer:  # noqa: N802
        found = self._set(state, p.get("RuleSetName", ""))
        if found is None:
            return _error("RuleSetDoesNotExist", f"Rule set does not exist: {p.get('RuleSetName')}")
        inner = f"<Metadata>{found.metadata()}</Metadata><Rules>{to_xml(found.rules)}</Rules>"
        return _xml("DescribeReceiptRuleSet", inner)

    def op_CreateReceiptRuleSet(self, state: RegionReceiving, p: dict[str, str]) -> Answer:  # noqa: N802
        name = p.get("RuleSetName", "")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", name):
            return _error("InvalidParameterValue", "Invalid RuleSetName.")
        if name in state.sets:
            return _error("AlreadyExists", f"Rule set already exists: {name}")
        state.sets[name] = RuleSet(name)
        return _xml("CreateReceiptRuleSet")

    def op_SetActiveReceiptRuleSet(self, state: RegionReceiving, p: dict[str, str]) -> Answer:  # noqa: N802
        name = p.get("RuleSetName") or None
        if name is not None and name not in state.sets:
            return _error("RuleSetDoesNotExist", f"Rule set does not exist: {name}")
        state.active = name
        return _xml("SetActiveReceiptRuleSet")

    # -- rules -----------------------------------------------------------------------------

    def op_CreateReceiptRule(self, state: RegionReceiving, p: dict[str, str]) -> Answer:  # noqa: N802
        found = self._set(state, p.get("RuleSetName", ""))
        if found is None:
            return _error("RuleSetDoesNotExist", f"Rule set does not exist: {p.get('RuleSetName')}")
        rule = nested(p, "Rule")
        problem = self._bad_rule(rule)
        if problem is not None:
            return problem
        if any(r["Name"] == rule["Name"] for r in found.rules):
            return _error("AlreadyExists", f"Rule already exists: {rule['Name']}")
        after = p.get("After")
        names = [r["Name"] for r in found.rules]
        at = names.index(after) + 1 if after in names else len(found.rules)
        found.rules.insert(at, rule)
        return _xml("CreateReceiptRule")

    def op_UpdateReceiptRule(self, state: RegionReceiving, p: dict[str, str]) -> Answer:  # noqa: N802
        found = self._set(state, p.get("RuleSetName", ""))
        if found is None:
            return _error("RuleSetDoesNotExist", f"Rule set does not exist: {p.get('RuleSetName')}")
        rule = nested(p, "Rule")
        problem = self._bad_rule(rule)
        if problem is not None:
            return problem
        for i, existing in enumerate(found.rules):
            if existing["Name"] == rule["Name"]:
                found.rules[i] = rule
                return _xml("UpdateReceiptRule")
        return _error("RuleDoesNotExist", f"Rule does not exist: {rule['Name']}")

    def op_DeleteReceiptRule(self, state: RegionReceiving, p: dict[str, str]) -> Answer:  # noqa: N802
        found = self._set(state, p.get("RuleSetName", ""))
        if found is None:
            return _error("RuleSetDoesNotExist", f"Rule set does not exist: {p.get('RuleSetName')}")
        found.rules = [r for r in found.rules if r["Name"] != p.get("RuleName")]
        return _xml("DeleteReceiptRule")
