"""``mailer users create | list``: people who sign in to the console (``mailer.people``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from mailer.config import Settings

users_app = typer.Typer(help="People who sign in to the console.", no_args_is_help=True)

out = Console()
err = Console(stderr=True)

DirOption = Annotated[
    Path | None,
    typer.Option("--dir", help="The data directory of a `mailer dev` stack to use."),
]


@users_app.command("create")
def create(
    email: Annotated[str, typer.Option(help="The person's address.")],
    role: Annotated[str, typer.Option(help="admin, marketer, operator or viewer.")],
    directory: DirOption = None,
) -> None:
    """Create a person; their one-time invitation link is printed alone on the last line
    (and mailed when MAILER_CONSOLE_MAIL_FROM is set)."""
    from mailer.cli.common import run_on_stack, stack_settings
    from mailer.errors import MailerError
    from mailer.models import ROLES

    if role not in ROLES:
        err.print(f"[red]unknown role {role!r}; one of {', '.join(ROLES)}[/red]")
        raise typer.Exit(2)
    settings = stack_settings(directory, signing=True)
    try:
        person_id, link = run_on_stack(settings, _create(settings, email, role))
    except MailerError as exc:
        err.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(2) from exc
    err.print(
        f"created {role} {person_id} {email.strip().lower()}; the invitation link works once,"
        f" for {settings.invitation_hours:g} hours:"
    )
    print(link)


async def _create(settings: Settings, email: str, role: str) -> tuple[int, str]:
    from arq import create_pool

    from mailer.app import redis_settings
    from mailer.db import create_engine, create_sessionmaker, transaction
    from mailer.people import service
    from mailer.people.service import Actor

    engine = create_engine(settings, pool_size=1)
    redis = await create_pool(redis_settings(settings)) if settings.console_mail_from else None
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            person, link = await service.create(session, settings, redis, email, role)
            await service.record(
                session,
                Actor(None, "command line"),
                "person.invited",
                "person",
                person.id,
                {"email": person.email, "role": role},
            )
            return person.id, link
    finally:
        if redis is not None:
            await redis.aclose()
        await engine.dispose()


@users_app.command("list")
def list_people(directory: DirOption = None) -> None:
    """The people, their roles and whether they have set a password."""
    from mailer.cli.common import run_on_stack, stack_settings

    settings = stack_settings(directory)
    rows = run_on_stack(settings, _list(settings))
    table = Table("id", "email", "role", "state")
    for row in rows:
        table.add_row(*row)
    out.print(table)


async def _list(settings: Settings) -> list[tuple[str, str, str, str]]:
    from mailer.db import create_engine, create_sessionmaker
    from mailer.pagination import MAX_LIMIT, Page, id_cursor
    from mailer.people import service

    engine = create_engine(settings, pool_size=1)
    rows: list[tuple[str, str, str, str]] = []
    try:
        async with create_sessionmaker(engine)() as session:
            last: int | None = None
            while True:
                people, cursor = await service.page(session, Page(last, MAX_LIMIT, id_cursor))
                for p in people:
                    state = (
                        "disabled" if p.disabled_at else "active" if p.password_hash else "invited"
                    )
                    rows.append((str(p.id), p.email, p.role, state))
                if cursor is None:
                    return rows
                last = people[-1].id
    finally:
        await engine.dispose()
