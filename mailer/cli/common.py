"""What every ``mailer`` command shares: the root Typer app, the consoles, and how a command
finds the stack it talks to (``--dir``, the environment, or the nearest running dev stack)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console

if TYPE_CHECKING:
    from mailer.config import Settings

app = typer.Typer(
    help="Bulk and transactional email on Amazon SES.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

out = Console()
err = Console(stderr=True)

DEFAULT_DIR = Path(".mailer-dev")
DirOption = Annotated[Path, typer.Option("--dir", help="Where the dev stack keeps its data.")]


def refuse(exc: Exception) -> NoReturn:
    """Exit 2 with the one line of a :class:`mailer.secrets.WeakSecret`."""
    err.print(
        f"mailer: refusing to start: {exc}",
        style="red",
        markup=False,
        highlight=False,
        soft_wrap=True,  # one line, whatever the terminal's width
    )
    raise typer.Exit(2)


StackDirOption = Annotated[
    Path | None,
    typer.Option(
        "--dir",
        help="The data directory of a `mailer dev` stack to use (default: MAILER_DATABASE_URL"
        " and MAILER_REDIS_URL when set, else the nearest running .mailer-dev here or above).",
    ),
]


def nearest_stack(start: Path) -> tuple[Path, dict] | None:
    """The running dev stack of ``start``/.mailer-dev or of a parent's."""
    from mailer.local.devstack import running_stack

    for folder in (start, *start.parents):
        info = running_stack(folder / DEFAULT_DIR)
        if info is not None:
            return folder / DEFAULT_DIR, info
    return None


def stack_settings(directory: Path | None = None, signing: bool = False) -> Settings:
    """The settings of the stack a command talks to, its database and its Redis from the
    same place: ``--dir``'s dev stack; else MAILER_DATABASE_URL (and MAILER_REDIS_URL);
    else the dev stack running from here or a parent folder (with its secret key); else the
    defaults. ``signing``: the command signs or hands out credentials, so a secret key that
    must not sign stops it (exit 2)."""
    from mailer.config import get_settings
    from mailer.local.devstack import running_stack
    from mailer.secrets import WeakSecret, require

    settings = get_settings()
    if directory is not None:
        info = running_stack(directory)
        if info is None:
            err.print(
                f"no dev stack is running from {directory} (start it with `mailer dev --dir"
                f" {directory}`)",
                style="red",
                markup=False,
            )
            raise typer.Exit(1)
        found: tuple[Path, dict] | None = (directory, info)
    elif "database_url" in settings.model_fields_set:
        if "redis_url" not in settings.model_fields_set:
            err.print(
                f"[dim]MAILER_REDIS_URL is not set: Redis is {settings.redis_url}[/dim]",
            )
        found = None
    else:
        found = nearest_stack(Path.cwd())
    if found is not None:
        where, info = found
        err.print(f"[dim]using the dev stack running from {where}[/dim]")
        update = {"database_url": info["database_url"], "redis_url": info["redis_url"]}
        if info.get("secret_key"):
            update.update(secret_key=info["secret_key"], secret_keys=[])
        settings = settings.model_copy(update=update)
    if signing:
        try:
            require(settings)
        except WeakSecret as exc:
            refuse(exc)
    return settings


def run_on_stack(settings: Settings, work: Any) -> Any:
    """``asyncio.run(work)``; a database that is not there or not migrated is one clear
    line and exit code 1, not a traceback."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import DBAPIError, ProgrammingError

    url = make_url(settings.database_url).render_as_string(hide_password=True)
    try:
        return asyncio.run(work)
    except ProgrammingError as exc:
        work_closed = "UndefinedTable" in str(exc) or "does not exist" in str(exc)
        if not work_closed:
            raise
        err.print(
            f"the database {url} has no mailer tables: run `mailer migrate` (with"
            " MAILER_DATABASE_URL set to it) first",
            style="red",
            markup=False,
        )
    except (OSError, DBAPIError) as exc:
        err.print(
            f"cannot reach the stack's database {url} / Redis {settings.redis_url}:"
            f" {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
            style="red",
            markup=False,
        )
        err.print(
            "use --dir DIR for a `mailer dev` stack, or set MAILER_DATABASE_URL and"
            " MAILER_REDIS_URL"
        )
    raise typer.Exit(1)
