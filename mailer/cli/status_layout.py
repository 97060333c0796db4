"""How ``mailer status`` shows its tables: whole in a wide terminal; in a narrow one (an
80-column terminal) the secondary columns go, least useful first, until a table fits, so
no cell is cut to ``mar…``; what still does not fit is shown as stacked rows (one
"column: value" line each). ``--wide`` keeps every column, ``--json`` prints the tables as
JSON (a list of {title, rows: [{column: value}]})."""

from __future__ import annotations

import io
import json
from typing import Any

from rich.console import Console
from rich.table import Table

ELLIPSIS = "…"

# per table (by the start of its title): the columns that may go, the first one first
OPTIONAL: dict[str, tuple[str, ...]] = {
    "campaigns": (
        "suppressed",
        "complained",
        "delivered",
        "failed",
        "class",
        "recipients",
        "id",
    ),
    "regions": ("checked", "production", "enforcement", "sent 24 h (SES)", "sending"),
    "reputation": ("complaint 1 h", "bounce 1 h", "sent 1 h", "region"),
    "recent automatic pauses": ("resumed", "class", "campaign", "scope"),
}


def _header(table: Table, i: int) -> str:
    return str(table.columns[i].header)


def rows(table: Table) -> list[dict[str, str]]:
    """The table's rows as {column: cell}."""
    cells = [list(column.cells) for column in table.columns]
    count = max((len(c) for c in cells), default=0)
    return [
        {_header(table, i): str(cells[i][r]) for i in range(len(table.columns))}
        for r in range(count)
    ]


def _without(table: Table, dropped: set[str]) -> Table:
    kept = [i for i, c in enumerate(table.columns) if str(c.header) not in dropped]
    narrow = Table(title=table.title)
    for i in kept:
        narrow.add_column(_header(table, i), justify=table.columns[i].justify)
    for row in rows(table):
        narrow.add_row(*(row[_header(table, i)] for i in kept))
    return narrow


def _stacked(table: Table) -> Table:
    stacked = Table(title=table.title, show_header=False)
    stacked.add_column("column", style="bold")
    stacked.add_column("value", overflow="fold")
    for n, row in enumerate(rows(table)):
        if n:
            stacked.add_section()
        for column, value in row.items():
            stacked.add_row(column, value)
    return stacked


def _fits(console: Console, table: Table) -> bool:
    # rendered at the console's width, as it would be printed: fits when no cell was cut
    # (rich marks a cut with an ellipsis; text wraps between words otherwise)
    probe = Console(
        file=io.StringIO(), width=console.width, color_system=None, legacy_windows=False
    )
    probe.print(table)
    return ELLIPSIS not in probe.file.getvalue()  # type: ignore[attr-defined]


def fit(console: Console, table: Table) -> Table:
    """The table as it reads best at the console's width."""
    if _fits(console, table):
        return table
    optional = next(
        (names for start, names in OPTIONAL.items() if str(table.title).startswith(start)), ()
    )
    dropped: set[str] = set()
    for name in optional:
        dropped.add(name)
        narrow = _without(table, dropped)
        if _fits(console, narrow):
            return narrow
    return _stacked(table)


def show(console: Console, tables: list[Table], *, wide: bool, as_json: bool) -> None:
    if as_json:
        doc: list[dict[str, Any]] = [{"title": str(t.title), "rows": rows(t)} for t in tables]
        print(json.dumps(doc, indent=2, ensure_ascii=False))
        return
    for table in tables:
        console.print(table if wide else fit(console, table))
