"""``mailer ses import-suppressions``: the SES account-level suppression list into ours.

Kept apart from ``mailer/cli.py`` so that the ``ses`` command group only has to call
:func:`add_commands`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

out = Console()
err = Console(stderr=True)


def add_commands(ses_app: typer.Typer) -> None:
    """Add ``import-suppressions`` to the ``mailer ses`` group."""
    ses_app.command("import-suppressions")(import_suppressions)


def import_suppressions(
    region: Annotated[
        list[str] | None,
        typer.Option(
            "--region", help="A region to read; repeat for several (default: MAILER_REGIONS)."
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would change; change nothing.")
    ] = False,
) -> None:
    """Copy the SES account-level suppression list of each region into ours.

    BOUNCE → scope all, COMPLAINT → scope marketing (as the feedback loop treats them);
    the date is kept. Idempotent: a second run finds everything there already. A
    suppression is only ever widened (marketing → all), never narrowed.
    """
    from mailer.suppression.ses_account import SesListError

    try:
        summary = asyncio.run(_import(region or None, dry_run))
    except SesListError as exc:
        err.print(str(exc), style="red", markup=False, highlight=False)
        raise typer.Exit(1) from None
    table = Table(title="SES account suppression list" + (" (dry run)" if dry_run else ""))
    for column in ("region", "listed"):
        table.add_column(column, justify="left" if column == "region" else "right")
    for name, n in summary.listed.items():
        table.add_row(name, f"{n:,}")
    out.print(table)
    out.print(
        f"{summary.created:,} new, {summary.unchanged:,} already there, "
        f"{summary.widened:,} widened to all" + (" (dry run: nothing changed)" if dry_run else ""),
        highlight=False,
    )


@dataclass
class Summary:
    listed: dict[str, int]  # entries of each region's list
    created: int
    widened: int
    unchanged: int


async def _import(regions: list[str] | None, dry_run: bool) -> Summary:
    from mailer.cli.common import DEFAULT_DIR, stack_settings
    from mailer.db import create_engine, create_sessionmaker
    from mailer.local.devstack import running_stack
    from mailer.suppression import service
    from mailer.suppression.ses_account import suppressed_destinations

    settings = stack_settings()
    endpoint, credentials = settings.ses_endpoint_url, None
    if endpoint is None and "database_url" not in settings.model_fields_set:
        stack = running_stack(DEFAULT_DIR)
        if stack is not None and stack.get("ses_endpoint"):
            # the dev stack's SES emulator, with the fake credentials it gives its children
            endpoint = str(stack["ses_endpoint"])
            credentials = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    listed: dict[str, int] = {}
    entries = []
    for name in regions or settings.regions:
        found = await suppressed_destinations(name, endpoint, credentials)
        listed[name] = len(found)
        entries += found
    engine = create_engine(settings, pool_size=1)
    try:
        async with create_sessionmaker(engine)() as session:
            created, widened, unchanged = await service.import_ses_list(session, entries)
            # a dry run makes the same changes, counts them and rolls them back
            await (session.rollback() if dry_run else session.commit())
    finally:
        await engine.dispose()
    return Summary(listed, created, widened, unchanged)
