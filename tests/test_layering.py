"""The layering of ``mailer`` and ``workers``, checked from the source (every import, also
those inside functions), so that it stays the way docs/architecture.md draws it:

- infrastructure (``config``, ``db``, ``errors``, ``metrics``, ``models``, …) imports no
  domain package and nothing above;
- domain packages (``contact``, ``campaign``, ``sending``, …, and ``openapi``, the route
  documentation helpers their endpoints use) import each other without cycles, and nothing
  of the composition layer;
- the composition layer (``app``, ``ops``, ``reconciler``, ``cli``, ``workers``) wires them;
- ``mailer.local`` (the embedded stack, the SES emulator) is imported only by the CLI;
- ``workers`` is imported by no ``mailer`` module but the ``mailer worker`` command;
- no module is over the size a reader holds in one sitting, but those listed with a reason.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

INFRASTRUCTURE = {
    "batching",
    "config",
    "db",
    "errors",
    "group_commit",
    "json_body",
    "locks",
    "logging",
    "metrics",
    "metrics_token",
    "middleware",
    "migrate",
    "models",
    "pagination",
    "queues",
    "resolver",
    "resources",
    "secrets",
    "types",
}
DOMAIN = {
    "audience",
    "auth",
    "campaign",
    "contact",
    "message",
    "deliverability",
    "engagement",
    "openapi",
    "people",
    "ratelimit",
    "reputation",
    "sending",
    "ses",
    "subscription",
    "suppression",
    "template",
    "webhook",
    "webhook_out",
}
# wires the domain together; may import anything below it
COMPOSITION = {"app", "console", "ops", "reconciler", "cli", "local", "workers"}

MAX_LINES = 400
# modules allowed over MAX_LINES, each with its reason
LONG_MODULES: dict[str, str] = {}


def _unit(module: str) -> str:
    """The layer unit of a dotted module name: ``mailer.sending.sender`` → ``sending``."""
    parts = module.split(".")
    if parts[0] == "workers":
        return "workers"
    return parts[1] if len(parts) > 1 else parts[0]


def _modules() -> dict[str, Path]:
    found = {}
    for path in [*ROOT.glob("mailer/**/*.py"), *ROOT.glob("workers/**/*.py")]:
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imports(path: Path) -> set[str]:
    """Every ``mailer``/``workers`` module ``path`` imports, at any depth of the file."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            # ``from mailer import metrics`` imports the module mailer.metrics
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {n for n in names if n.split(".")[0] in ("mailer", "workers") and n != "mailer"}


MODULES = _modules()
EDGES = {module: _imports(path) for module, path in MODULES.items()}


def _unit_edges() -> dict[str, dict[str, list[str]]]:
    edges: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for module, imported in EDGES.items():
        for name in imported:
            if name not in MODULES and name.rsplit(".", 1)[0] not in MODULES:
                continue  # a name inside a module (``from mailer.db import transaction``)
            src, dst = _unit(module), _unit(name)
            if src != dst:
                edges[src][dst].append(module)
    return edges


def test_every_unit_has_a_layer() -> None:
    units = {_unit(m) for m in MODULES} - {"mailer"}
    assert units <= INFRASTRUCTURE | DOMAIN | COMPOSITION, units - (
        INFRASTRUCTURE | DOMAIN | COMPOSITION
    )


def test_infrastructure_imports_no_domain_and_nothing_above() -> None:
    wrong = [
        f"{src} -> {dst} (in {', '.join(sorted(set(where)))})"
        for src, targets in _unit_edges().items()
        if src in INFRASTRUCTURE
        for dst, where in targets.items()
        if dst not in INFRASTRUCTURE
    ]
    assert not wrong, wrong


def test_domain_imports_nothing_of_the_composition_layer() -> None:
    wrong = [
        f"{src} -> {dst} (in {', '.join(sorted(set(where)))})"
        for src, targets in _unit_edges().items()
        if src in DOMAIN
        for dst, where in targets.items()
        if dst in COMPOSITION
    ]
    assert not wrong, wrong


def test_no_cycle_between_domain_packages() -> None:
    edges = _unit_edges()
    graph = {u: {d for d in edges.get(u, {}) if d in DOMAIN} for u in DOMAIN}
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        for nxt in sorted(graph[node]):
            if nxt in path:
                cycles.append(" -> ".join([*path[path.index(nxt) :], nxt]))
            elif len(path) < len(graph):
                visit(nxt, [*path, nxt])

    for start in sorted(graph):
        visit(start, [start])
    assert not cycles, sorted(set(cycles))[:5]


def test_the_local_stack_is_imported_by_the_cli_only() -> None:
    wrong = sorted(
        module
        for module, imported in EDGES.items()
        if any(name.startswith("mailer.local") for name in imported)
        and _unit(module) not in ("local", "cli")
    )
    assert not wrong, wrong


def test_workers_are_started_by_the_worker_command_only() -> None:
    wrong = sorted(
        module
        for module, imported in EDGES.items()
        if module.startswith("mailer.")
        and any(name.startswith("workers") for name in imported)
        and module != "mailer.cli.serve"
    )
    assert not wrong, wrong


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_fits_in_one_sitting(module: str) -> None:
    lines = MODULES[module].read_text().count("\n")
    assert lines <= MAX_LINES or module in LONG_MODULES, (
        f"{module} has {lines} lines (more than {MAX_LINES}): split it by responsibility"
    )


def test_the_rules_catch_what_they_are_for() -> None:
    """The check itself: a domain → composition import and a cycle are found."""
    assert _unit("mailer.sending.sender") == "sending"
    assert _unit("workers.context") == "workers"
    assert "mailer.db" in _imports(MODULES["mailer.sending.sender"])
    assert "mailer.metrics" in _imports(MODULES["mailer.sending.sender"])


def test_every_package_ships() -> None:
    """The wheel finds packages by their ``__init__.py``: a folder of modules without one
    would be left out of it (and the API would not start from the wheel)."""
    folders = {p.parent for p in ROOT.glob("mailer/**/*.py")} | {
        p.parent for p in ROOT.glob("workers/**/*.py")
    }
    missing = sorted(str(f.relative_to(ROOT)) for f in folders if not (f / "__init__.py").exists())
    assert not missing, missing
