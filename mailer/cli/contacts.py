"""``mailer import``: a CSV of contacts into the stack's database."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from mailer.cli.common import (
    StackDirOption,
    app,
    err,
    out,
    run_on_stack,
    stack_settings,
)

if TYPE_CHECKING:
    from mailer.config import Settings


@app.command("import")
def import_(
    file: Annotated[
        Path,
        typer.Argument(
            help="The CSV file (header row, an email column).",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ],
    tag: Annotated[
        list[str] | None,
        typer.Option("--tag", help="A tag for every imported contact; repeat for several."),
    ] = None,
    directory: StackDirOption = None,
) -> None:
    """Import contacts from a CSV file, with a progress bar; the bad rows at the end."""
    from mailer.errors import MailerError

    try:
        settings = stack_settings(directory)
        report = run_on_stack(
            settings, _import_file(settings, file, file.stat().st_size, tag or [])
        )
    except MailerError as exc:
        err.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(2) from exc
    table = Table("row", "email", "reason", title=f"{report.rejected:,} rows rejected")
    for error in report.errors:
        table.add_row(str(error.row), error.email, error.reason)
    if report.errors:
        out.print(table)
    if report.rejected > len(report.errors):
        out.print(f"(the first {len(report.errors):,} of {report.rejected:,} are listed)")
    out.print(
        f"import {report.id} {report.status}: {report.total_rows:,} rows,"
        f" {report.created:,} created, {report.updated:,} updated,"
        f" {report.rejected:,} rejected"
    )
    if report.status != "completed":
        err.print(f"[red]{report.failure}[/red]")
        raise typer.Exit(1)


async def _import_file(settings: Settings, file: Path, size: int, tags: list[str]) -> Any:
    from collections.abc import AsyncIterator

    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    from mailer.contact import import_merge, imports
    from mailer.db import create_engine, create_sessionmaker, transaction
    from mailer.errors import TooLarge

    if size > settings.max_import_bytes:
        raise TooLarge(f"the file is over the import limit of {settings.max_import_bytes} bytes")
    engine = create_engine(settings, pool_size=2)
    sessionmaker = create_sessionmaker(engine)
    try:
        with Progress(
            TextColumn("{task.description}"), BarColumn(), DownloadColumn(), console=err
        ) as progress:
            reading = progress.add_task("reading", total=size)

            async def pieces() -> AsyncIterator[bytes]:
                with file.open("rb") as f:
                    while piece := f.read(256 * 1024):
                        yield piece

            async with transaction(sessionmaker) as session:
                accepted = await imports.create_import(
                    session,
                    None,
                    pieces(),
                    "text/csv",
                    tags,
                    on_bytes=lambda n: progress.advance(reading, n),
                )
                staged = await imports.get_import(session, accepted.id)
            merging = progress.add_task("importing", total=max(staged.total_rows, 1))
            progress.columns = (
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.completed:,.0f}/{task.total:,.0f} rows"),
            )
            progress.advance(merging, staged.rejected)
            await import_merge.run_import(
                sessionmaker, accepted.id, on_chunk=lambda n: progress.advance(merging, n)
            )
            progress.update(merging, completed=staged.total_rows)
        async with sessionmaker() as session:
            return await imports.get_import(session, accepted.id)
    finally:
        await engine.dispose()


# -- keys ----------------------------------------------------------------------------------
