"""``mailer migrate``, ``mailer api`` and ``mailer worker``: what a deployment runs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from mailer.cli.common import (
    app,
    err,
    refuse,
)

if TYPE_CHECKING:
    pass


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
        refuse(exc)
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
    from workers.main import start

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
        start(names, metrics)
    except WeakSecret as exc:
        refuse(exc)
