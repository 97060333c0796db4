"""``mailer keys …`` (API keys) and ``mailer secret``."""

from __future__ import annotations

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


keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="What the key is for.")],
    scope: Annotated[list[str], typer.Option(help="A scope; repeat for several.")],
    directory: StackDirOption = None,
) -> None:
    """Create an API key; the key is printed alone on the last line (it is shown only once)."""
    from mailer.models import SCOPES

    unknown = [s for s in scope if s not in SCOPES]
    if unknown or not scope:
        err.print(
            f"[red]unknown scope(s) {', '.join(unknown)}; use some of {', '.join(SCOPES)}[/red]"
        )
        raise typer.Exit(2)
    settings = stack_settings(directory, signing=True)
    key_id, raw = run_on_stack(settings, _create_key(settings, name, scope))
    err.print(f"created key {key_id} '{name}' with scopes {', '.join(sorted(set(scope)))}")
    print(raw)


async def _create_key(settings: Settings, name: str, scopes: list[str]) -> tuple[int, str]:
    from mailer.auth.service import create_key
    from mailer.db import create_engine, create_sessionmaker, transaction

    engine = create_engine(settings, pool_size=1)
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            key, raw = await create_key(session, name, scopes)
            return key.id, raw
    finally:
        await engine.dispose()


@keys_app.command("check")
def keys_check(directory: StackDirOption = None) -> None:
    """Read a key from standard input (never an argument: those show in ps); print "ok"
    when it is live, exit 1 otherwise."""
    import sys

    if sys.stdin.isatty():
        err.print("paste the key, then Enter:")
    raw = sys.stdin.readline().strip()
    if not raw:
        err.print(
            "no key on standard input; pipe it in: printf '%s' \"$KEY\" | mailer keys check",
            style="red",
            markup=False,
            highlight=False,
        )
        raise typer.Exit(2)
    settings = stack_settings(directory, signing=True)
    if not run_on_stack(settings, _key_is_live(settings, raw)):
        err.print("unknown or revoked key")
        raise typer.Exit(1)
    print("ok")


async def _key_is_live(settings: Settings, raw: str) -> bool:
    from mailer.auth.service import authenticate
    from mailer.db import create_engine, create_sessionmaker

    engine = create_engine(settings, pool_size=1)
    try:
        async with create_sessionmaker(engine)() as session:
            return await authenticate(session, raw) is not None
    finally:
        await engine.dispose()


@keys_app.command("list")
def keys_list(directory: StackDirOption = None) -> None:
    """Every API key (revoked ones too): id, name, prefix, scopes, dates; never the keys."""
    settings = stack_settings(directory, signing=True)
    keys = run_on_stack(settings, _list_keys(settings))
    table = Table("id", "name", "key", "scopes", "created (UTC)", "last used", "revoked")

    def when(at: Any) -> str:
        return at.strftime("%Y-%m-%d %H:%M") if at else "-"

    for k in keys:
        table.add_row(
            str(k.id),
            k.name,
            f"mk_{k.prefix}_…",
            ", ".join(k.scopes),
            when(k.created_at),
            when(k.last_used_at),
            when(k.revoked_at),
        )
    out.print(table)


async def _list_keys(settings: Settings) -> list[Any]:
    from mailer.auth.service import page
    from mailer.db import create_engine, create_sessionmaker
    from mailer.pagination import MAX_LIMIT, id_page

    engine = create_engine(settings, pool_size=1)
    keys: list[Any] = []
    cursor = None
    try:
        async with create_sessionmaker(engine)() as session:
            while True:
                found = await page(session, id_page(cursor, MAX_LIMIT))
                keys += found.items
                if (cursor := found.next_cursor) is None:
                    return keys
    finally:
        await engine.dispose()


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[int, typer.Argument(help="The key's id (mailer keys list).")],
    directory: StackDirOption = None,
) -> None:
    """Revoke an API key and end its dashboard sessions; exit 1 for an unknown id."""
    from mailer.errors import NotFound

    settings = stack_settings(directory, signing=True)
    try:
        name, ended = run_on_stack(settings, _revoke_key(settings, key_id))
    except NotFound as exc:
        err.print(exc.message, style="red", markup=False)
        raise typer.Exit(1) from None
    print(f"revoked key {key_id} '{name}'; {ended} dashboard session(s) ended")


async def _revoke_key(settings: Settings, key_id: int) -> tuple[str, int]:
    from mailer.auth.service import revoke
    from mailer.db import create_engine, create_sessionmaker, transaction

    engine = create_engine(settings, pool_size=1)
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            key, ended = await revoke(session, key_id)
            return key.name, ended
    finally:
        await engine.dispose()


# -- secret --------------------------------------------------------------------------------


@app.command()
def secret() -> None:
    """Print a fresh random secret key, for MAILER_SECRET_KEY (or MAILER_SECRET_KEYS)."""
    from mailer.secrets import new_key

    print(new_key())
