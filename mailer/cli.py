"""The ``mailer`` command: dev stack, demo, migrations, API, worker, import, keys, secret,
status."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from mailer.cli_ses import ses_app
from mailer.cli_ses_suppressions import add_commands as add_ses_suppression_commands
from mailer.cli_users import users_app

if TYPE_CHECKING:
    from mailer.config import Settings

app = typer.Typer(
    help="Bulk and transactional email on Amazon SES.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(ses_app, name="ses")
app.add_typer(users_app, name="users")
add_ses_suppression_commands(ses_app)

out = Console()
err = Console(stderr=True)


DEFAULT_DIR = Path(".mailer-dev")
DirOption = Annotated[Path, typer.Option("--dir", help="Where the dev stack keeps its data.")]


# -- dev and demo --------------------------------------------------------------------------


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@app.command()
def dev(
    dir: DirOption = DEFAULT_DIR,  # noqa: A002 - the option is --dir
    api_port: Annotated[int, typer.Option(help="Port of the API.")] = 8000,
    pg_port: Annotated[int, typer.Option(help="Port of the embedded PostgreSQL.")] = 15432,
    redis_port: Annotated[int, typer.Option(help="Port of the embedded Redis.")] = 16379,
    ses_port: Annotated[
        int, typer.Option("--ses-port", "--moto-port", help="Port of the SES emulator.")
    ] = 15000,
) -> None:
    """Zero-setup local stack: PostgreSQL, Redis, SES emulator, migrations, API and a worker."""
    from mailer.local.devstack import DevStack, StackError, log_tail, stack_config

    config = stack_config(
        dir, api_port=api_port, pg_port=pg_port, redis_port=redis_port, ses_port=ses_port
    )
    stack = DevStack(config, log=lambda line: err.print(f"[dim]{line}[/dim]"))
    # explicit, so that a launcher started with SIGINT ignored (a script's background job)
    # still stops cleanly
    signal.signal(signal.SIGINT, _raise_interrupt)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    code = 0
    try:
        info = stack.start()
        _print_stack(info)
        while (failed := stack.failed_service()) is None:
            time.sleep(0.5)
        err.print(
            f"{failed.name} exited with code {failed.process.returncode}; "
            f"log {failed.log_path}:\n{log_tail(failed.log_path)}",
            style="red",
            markup=False,
            highlight=False,
        )
        code = 1
    except StackError as exc:
        err.print(str(exc), style="red", markup=False, highlight=False)
        code = 1
    except KeyboardInterrupt:
        err.print("stopping…")
    finally:
        # a second Ctrl-C must not cut the clean-up short (the children die with us anyway)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()
    raise typer.Exit(code)


def _print_stack(info: dict[str, Any]) -> None:
    embedded = set(info.get("embedded", []))

    def origin(name: str) -> str:
        return "(embedded)" if name in embedded else "(from the environment)"

    ses_note = (
        "mailbox simulator on, notifications to /webhooks/sns"
        if "ses" in embedded
        else origin("ses")
    )
    lines = [
        f"API          {info['api_url']}   (docs {info['api_url']}/docs)",
        f"PostgreSQL   {info['database_url']}   {origin('postgres')}",
        f"Redis        {info['redis_url']}   {origin('redis')}",
        f"SES          {info['ses_endpoint']}   {ses_note}",
        f"metrics      {info['api_url']}/metrics   (bearer token: metrics_token in stack.json)",
        f"logs         {info['base_dir']}/logs",
        "",
        "admin API key (also in stack.json):",
    ]
    out.print(Panel("\n".join(lines), title="mailer dev is running — Ctrl-C stops it"))
    # alone on its line, for copy and paste
    out.print(info["admin_key"], highlight=False, soft_wrap=True)


@app.command()
def demo(
    dir: DirOption = DEFAULT_DIR,  # noqa: A002
    contacts: Annotated[int, typer.Option(help="How many contacts to seed.")] = 10_000,
    api_url: Annotated[
        str | None, typer.Option(envvar="MAILER_API_URL", help="API of a running stack.")
    ] = None,
    api_key: Annotated[
        str | None, typer.Option(envvar="MAILER_API_KEY", help="Admin key for --api-url.")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the campaign.")] = 600.0,
) -> None:
    """Seed contacts, a template, a segment and a campaign; send it and show the numbers."""
    from mailer.local.demo import run_demo

    raise typer.Exit(
        run_demo(
            dir, contacts=contacts, api_url=api_url, api_key=api_key, timeout=timeout, console=out
        )
    )


# -- the processes -------------------------------------------------------------------------


@app.command()
def migrate() -> None:
    """alembic upgrade head."""
    from mailer.migrate import upgrade

    upgrade()
    err.print("database is at head")


# a young generation of 10,000 net new containers (Python's 700 is met by a few requests
# in flight): requests free what they allocate, so a collection now finds real garbage
API_GC_THRESHOLDS = (10_000, 10, 10)


@app.command()
def api(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """The HTTP API (uvicorn)."""
    import gc

    import uvicorn

    from mailer.app import create_app
    from mailer.secrets import WeakSecret

    try:
        application = create_app()
    except WeakSecret as exc:
        _refuse(exc)
    # what start-up loaded (FastAPI, pydantic, SQLAlchemy: hundreds of thousands of
    # objects) is kept out of the collector: a full collection walked it all, a stall of
    # 100-300 ms for every request in flight
    gc.collect()
    gc.freeze()
    gc.set_threshold(*API_GC_THRESHOLDS)
    # httptools and uvloop (uvicorn[standard]) named, not left to "auto"; no access log
    # (a log line per request costs more than an SNS notification's whole handling)
    uvicorn.run(
        application,
        host=host,
        port=port,
        proxy_headers=True,
        access_log=False,
        http="httptools",
        loop="uvloop",
        server_header=False,
    )


@app.command()
def worker(
    queues: Annotated[
        str | None, typer.Option(help="Comma-separated queues to work on (default: all).")
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            help="Serve this worker's /metrics on this port (0: off).",
            show_default="MAILER_WORKER_METRICS_PORT",
        ),
    ] = None,
) -> None:
    """An arq worker."""
    from mailer.ops.worker_metrics import MetricsSetupError, prepare
    from mailer.queues import QUEUES as known
    from workers.main import run

    names = [q.strip() for q in queues.split(",") if q.strip()] if queues else None
    unknown = [q for q in names or [] if q not in known]
    if unknown:
        err.print(f"[red]unknown queue(s) {', '.join(unknown)}; use {', '.join(known)}[/red]")
        raise typer.Exit(2)
    from mailer.secrets import WeakSecret

    try:
        metrics = prepare(metrics_port)  # before anything counts a metric
    except MetricsSetupError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run(names, metrics))
    except WeakSecret as exc:
        _refuse(exc)


def _refuse(exc: Exception) -> NoReturn:
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


def _nearest_stack(start: Path) -> tuple[Path, dict] | None:
    """The running dev stack of ``start``/.mailer-dev or of a parent's."""
    from mailer.local.devstack import running_stack

    for folder in (start, *start.parents):
        info = running_stack(folder / DEFAULT_DIR)
        if info is not None:
            return folder / DEFAULT_DIR, info
    return None


def _settings(directory: Path | None = None, signing: bool = False) -> Settings:
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
        found = _nearest_stack(Path.cwd())
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
            _refuse(exc)
    return settings


def _run_on_stack(settings: Settings, work: Any) -> Any:
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


# -- import --------------------------------------------------------------------------------


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
        settings = _settings(directory)
        report = _run_on_stack(
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

    from mailer.contact import service
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
                accepted = await service.create_import(
                    session,
                    None,
                    pieces(),
                    "text/csv",
                    tags,
                    on_bytes=lambda n: progress.advance(reading, n),
                )
                staged = await service.get_import(session, accepted.id)
            merging = progress.add_task("importing", total=max(staged.total_rows, 1))
            progress.columns = (
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.completed:,.0f}/{task.total:,.0f} rows"),
            )
            progress.advance(merging, staged.rejected)
            await service.run_import(
                sessionmaker, accepted.id, on_chunk=lambda n: progress.advance(merging, n)
            )
            progress.update(merging, completed=staged.total_rows)
        async with sessionmaker() as session:
            return await service.get_import(session, accepted.id)
    finally:
        await engine.dispose()


# -- keys ----------------------------------------------------------------------------------


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
    settings = _settings(directory, signing=True)
    key_id, raw = _run_on_stack(settings, _create_key(settings, name, scope))
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
    settings = _settings(directory, signing=True)
    if not _run_on_stack(settings, _key_is_live(settings, raw)):
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
    settings = _settings(directory, signing=True)
    keys = _run_on_stack(settings, _list_keys(settings))
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

    settings = _settings(directory, signing=True)
    try:
        name, ended = _run_on_stack(settings, _revoke_key(settings, key_id))
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


# -- status --------------------------------------------------------------------------------


@app.command()
def status(
    limit: Annotated[int, typer.Option(help="How many recent campaigns to show.")] = 20,
    directory: StackDirOption = None,
    wide: Annotated[bool, typer.Option("--wide", help="Every column, however narrow.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="The tables as JSON.")] = False,
) -> None:
    """Campaigns, queues, regions and reputation as tables (fitted to the terminal)."""
    from mailer.cli_status import show

    settings = _settings(directory)
    show(out, _run_on_stack(settings, _status_tables(settings, limit)), wide=wide, as_json=as_json)


async def _status_tables(settings: Settings, limit: int) -> list[Table]:
    """The dashboard's numbers as tables: campaigns, queues, regions, reputation, pauses."""
    from redis.asyncio import Redis

    from mailer.campaign.service import progress as campaign_progress
    from mailer.db import create_engine
    from mailer.queues import QUEUES
    from mailer.reputation import repository as reputation
    from mailer.reputation.service import report as reputation_report

    engine = create_engine(settings, pool_size=1)
    try:
        async with engine.connect() as conn:
            campaigns = await reputation.recent_campaigns(conn, limit)
            rep = await reputation_report(conn, settings)
            pauses = await reputation.recent_pauses(conn, 10)
    finally:
        await engine.dispose()

    redis = Redis.from_url(settings.redis_url)
    try:
        depths = [(queue, await redis.zcard(queue)) for queue in QUEUES.values()]
    finally:
        await redis.aclose()

    ct = Table(title="campaigns")
    for column in (
        "id",
        "name",
        "class",
        "status",
        "progress",
        "recipients",
        "sent",
        "failed",
        "suppressed",
        "delivered",
        "bounced",
        "complained",
    ):
        ct.add_column(column, justify="left" if column in ("name", "class", "status") else "right")
    for c in campaigns:
        state = c.status + (f" ({c.paused_reason})" if c.paused_reason else "")
        progress = f"{campaign_progress(c.recipients, c.queued):.1%}" if c.recipients else "-"
        ct.add_row(
            str(c.id),
            c.name,
            c.mail_class,
            state,
            progress,
            *(
                f"{n:,}"
                for n in (
                    c.recipients,
                    c.sent,
                    c.failed,
                    c.suppressed,
                    c.delivered,
                    c.bounced,
                    c.complained,
                )
            ),
        )

    qt = Table(title="queues")
    qt.add_column("queue")
    qt.add_column("jobs waiting", justify="right")
    for name, depth in depths:
        qt.add_row(name, f"{depth:,}")

    rt = Table(title="regions (SES account)")
    for column in (
        "region",
        "send rate (/s)",
        "24 h quota",
        "sent 24 h (SES)",
        "sent 24 h (here)",
        "sending",
        "enforcement",
        "production",
        "checked",
    ):
        rt.add_column(
            column,
            justify="right"
            if "sent" in column or "quota" in column or "rate" in column
            else "left",
        )
    for g in rep.regions:
        rt.add_row(
            g.region,
            f"{g.send_rate_limit:g}" + (" (override)" if g.rate_overridden else ""),
            f"{g.max_24h_send:,.0f}" if g.max_24h_send is not None else "-",
            f"{g.sent_last_24h:,.0f}" if g.sent_last_24h is not None else "-",
            f"{g.sent_24h_recorded:,}",
            {True: "enabled", False: "DISABLED", None: "-"}[g.sending_enabled],
            g.enforcement_status or "-",
            {True: "yes", False: "sandbox", None: "-"}[g.production_access],
            g.checked_at.strftime("%H:%M:%S") if g.checked_at else (g.error or "never"),
        )

    thresholds = rep.thresholds
    rep_table = Table(
        title=f"reputation (bounce {thresholds['bounce_rate']:.2%}, complaint "
        f"{thresholds['complaint_rate']:.3%} after "
        f"{thresholds['min_sends']:.0f} sends)"
    )
    for column in (
        "mail class",
        "region",
        "status",
        "sent 1 h",
        "bounce 1 h",
        "complaint 1 h",
        "sent 24 h",
        "bounce 24 h",
        "complaint 24 h",
    ):
        rep_table.add_column(
            column, justify="left" if column in ("mail class", "region", "status") else "right"
        )
    for r in rep.mail_classes:
        rep_table.add_row(
            r.mail_class,
            r.region or "-",
            r.status,
            f"{r.last_1h.sent:,}",
            f"{r.last_1h.bounce_rate:.2%}",
            f"{r.last_1h.complaint_rate:.3%}",
            f"{r.last_24h.sent:,}",
            f"{r.last_24h.bounce_rate:.2%}",
            f"{r.last_24h.complaint_rate:.3%}",
        )

    pt = Table(title="recent automatic pauses")
    for column in ("when (UTC)", "scope", "class", "campaign", "reason", "resumed"):
        pt.add_column(column)
    for p in pauses:
        pt.add_row(
            p.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            p.scope,
            p.mail_class,
            str(p.campaign_id or "-"),
            p.reason,
            p.resumed_at.strftime("%H:%M:%S") if p.resumed_at else "-",
        )
    return [ct, qt, rt, rep_table, pt]


def main() -> None:
    app()


if __name__ == "__main__":
    main()
