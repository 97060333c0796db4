"""``mailer ses setup | check | policy``: connecting an SES account (``mailer.ses``).

Without an SES endpoint in the environment and with a dev stack running from ``--dir``,
the commands talk to that stack's emulator with its settings (as ``mailer status`` does).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from mailer.config import Settings, get_settings
from mailer.ses.aws import AwsError, Clients, Target

ses_app = typer.Typer(help="Connect and check an Amazon SES account.", no_args_is_help=True)

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False)

DirOption = Annotated[
    Path, typer.Option("--dir", help="A dev stack to use when no SES endpoint is set.")
]
RegionOption = Annotated[
    list[str] | None,
    typer.Option("--region", help="Region (repeatable; default: MAILER_REGIONS)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
AllowHttp = Annotated[
    bool, typer.Option("--allow-http", help="Accept an http:// MAILER_PUBLIC_URL (local only).")
]


def _context(directory: Path) -> tuple[Settings, Target]:
    """The settings and AWS target; those of a dev stack running from ``directory`` when
    no SES endpoint is configured."""
    from mailer.local.devstack import running_stack
    from mailer.local.ses_emulators import AWS_TEST_ENV

    settings = get_settings()
    if settings.ses_endpoint_url is not None:
        return settings, Target.from_settings(settings)
    info = running_stack(directory)
    if info is None or not info.get("sns_endpoint"):
        return settings, Target.from_settings(settings)
    err.print(f"[dim]using the dev stack running from {directory}[/dim]")
    given = settings.model_fields_set
    update: dict[str, Any] = {
        "database_url": info["database_url"],
        "redis_url": info["redis_url"],
        "public_url": info["api_url"],
        "ses_endpoint_url": info["ses_endpoint"],
        "sns_endpoint_url": info["sns_endpoint"],
    }
    if "sns_topic_arns" not in given and info.get("sns_topic_arn"):
        update["sns_topic_arns"] = [info["sns_topic_arn"]]
    if "regions" not in given and info.get("regions"):
        update["regions"] = info["regions"]
    target = Target(
        info["ses_endpoint"],
        info["sns_endpoint"],
        AWS_TEST_ENV["AWS_ACCESS_KEY_ID"],
        AWS_TEST_ENV["AWS_SECRET_ACCESS_KEY"],
    )
    return settings.model_copy(update=update), target


@ses_app.command()
def setup(
    domain: Annotated[str, typer.Option(help="The sending domain (example.com).")],
    region: RegionOption = None,
    mail_from: Annotated[
        str | None, typer.Option(help="The MAIL FROM domain (default: mail.<domain>).")
    ] = None,
    tracking_domain: Annotated[
        str | None, typer.Option(help="Custom redirect domain for open and click tracking.")
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="Read and plan; change nothing.")] = False,
    allow_http: AllowHttp = False,
    wait: Annotated[
        float, typer.Option(help="Seconds to wait for the webhook to confirm the subscription.")
    ] = 30.0,
    as_json: JsonOption = False,
    dir: DirOption = Path(".mailer-dev"),  # noqa: A002, B008 - the option is --dir
    inbound_unsubscribe: Annotated[
        bool,
        typer.Option(
            help="Also receive unsubscribe mail: an SES receipt rule for "
            "MAILER_INBOUND_UNSUBSCRIBE_DOMAIN (default unsubscribe.<domain>) publishing "
            "to the SNS topic; prints its MX record."
        ),
    ] = False,
) -> None:
    """Create or repair, per region: the SNS topic and its subscription to /webhooks/sns,
    a configuration set per mail class with its SNS event destination, the domain identity
    with Easy DKIM, MAIL FROM. A second run changes nothing."""
    from mailer.ses.setup import SetupRefused, run_setup

    settings, target = _context(dir)
    regions = region or settings.regions

    async def go() -> dict[str, Any]:
        async with Clients(target) as aws:
            return await run_setup(
                aws,
                settings,
                domain=domain.strip().lower(),
                regions=regions,
                mail_from=mail_from,
                tracking_domain=tracking_domain,
                allow_http=allow_http,
                dry_run=dry_run,
                wait_seconds=wait,
                inbound_unsubscribe=inbound_unsubscribe,
            )

    try:
        report = asyncio.run(go())
    except SetupRefused as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    except AwsError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        _print_setup(report)
    pending = any(r["subscription"] != "confirmed" for r in report["regions"])
    raise typer.Exit(0 if dry_run or not pending else 1)


def _print_setup(report: dict[str, Any]) -> None:
    marks = {
        "ok": "[green]=[/green]",
        "create": "[yellow]+[/yellow]",
        "update": "[yellow]~[/yellow]",
    }
    verb = {"create": "would create", "update": "would repair"} if report["dry_run"] else {}
    for result in report["regions"]:
        out.print(f"[bold]{result['region']}[/bold]")
        for step in result["steps"]:
            action = verb.get(step["action"], step["action"])
            out.print(f"  {marks[step['action']]} {step['resource']}: {action} — {step['detail']}")
        if not result["changed"]:
            out.print("  nothing to change")
        out.print(f"  subscription: {result['subscription']}")
        if result["subscription"] == "pending" and not report["dry_run"]:
            out.print(
                "  [red]the webhook did not confirm: put the topic in MAILER_SNS_TOPIC_ARNS of "
                "the API, restart it and run this again[/red]"
            )
        out.print("  DNS records to publish:")
        if not any(r["type"] == "CNAME" for r in result["dns"]):
            out.print("    (the three DKIM CNAMEs: once the identity exists)")
        for record in result["dns"]:
            out.print(
                f"    {record['name']}  {record['type']}  {record['value']}   ({record['why']})"
            )
    if report["dry_run"]:
        out.print("[bold]dry run: nothing was changed[/bold]")
    elif not report["changed"]:
        out.print("[bold]everything was in place: nothing changed[/bold]")
    out.print("\nSet in the environment of the API and the workers:")
    for name, value in report["environment"].items():
        out.print(f"{name}={value}")


@ses_app.command()
def check(
    region: RegionOption = None,
    domain: Annotated[
        list[str] | None,
        typer.Option("--domain", help="Identity to check (default: every domain identity)."),
    ] = None,
    allow_http: AllowHttp = False,
    as_json: JsonOption = False,
    dir: DirOption = Path(".mailer-dev"),  # noqa: A002, B008
) -> None:
    """One line per fact (✓ / ✗ / !), the fix under each that is not ✓; exits 1 on any ✗."""
    from mailer.db import create_engine
    from mailer.ses.check import FAIL, MARKS, run_check
    from mailer.ses.repository import senders_under_way

    settings, target = _context(dir)
    regions = region or settings.regions

    async def go() -> list[Any]:
        engine = create_engine(settings, pool_size=1)

        async def campaigns() -> list[tuple[str, list[str]]]:
            return await asyncio.wait_for(senders_under_way(engine), 10)

        try:
            async with Clients(target) as aws:
                return await run_check(
                    aws,
                    settings,
                    regions=regions,
                    domains=[d.strip().lower() for d in domain or []],
                    allow_http=allow_http,
                    campaigns=campaigns,
                )
        finally:
            await engine.dispose()

    facts = asyncio.run(go())
    failed = any(f.status == FAIL for f in facts)
    if as_json:
        print(json.dumps({"ok": not failed, "facts": [f.to_json() for f in facts]}, indent=2))
    else:
        colours = {"ok": "green", "fail": "red", "warn": "yellow"}
        for fact in facts:
            where = f"{fact.region}  " if fact.region else ""
            mark = f"[{colours[fact.status]}]{MARKS[fact.status]}[/{colours[fact.status]}]"
            out.print(f"{mark} {where}{fact.subject}: {fact.detail}")
            if fact.fix and fact.status != "ok":
                out.print(f"    fix: {fact.fix}", markup=False)
    raise typer.Exit(1 if failed else 0)


@ses_app.command()
def policy(
    domain: Annotated[list[str], typer.Option("--domain", help="Sending domain (repeatable).")],
    region: RegionOption = None,
    account_id: Annotated[
        str | None, typer.Option(help="AWS account id (default: that of MAILER_SNS_TOPIC_ARNS).")
    ] = None,
) -> None:
    """Least-privilege IAM policies, for running (API, workers) and for setup and check."""
    from mailer.ses.plan import DEFAULT_TOPIC_NAME
    from mailer.ses.policy import policies
    from mailer.ses.setup import topic_name

    settings = get_settings()
    regions = region or settings.regions
    account = account_id or next(
        (arn.split(":")[4] for arn in settings.sns_topic_arns if arn.count(":") == 5), "*"
    )
    names = {topic_name(settings, r) for r in regions}
    documents = policies(
        domains=domain,
        regions=regions,
        configuration_sets=list(settings.configuration_sets.values()),
        account=account,
        topic_name=names.pop() if len(names) == 1 else DEFAULT_TOPIC_NAME,
    )
    print(json.dumps(documents, indent=2))
