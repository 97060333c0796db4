"""``mailer dev`` and ``mailer demo``: the embedded local stack."""

from __future__ import annotations

import signal
import time
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.panel import Panel

from mailer.cli.common import (
    DEFAULT_DIR,
    DirOption,
    app,
    err,
    out,
)

if TYPE_CHECKING:
    pass


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
    from mailer.local.devstack import DevStack, stack_config
    from mailer.local.processes import StackError, log_tail

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
