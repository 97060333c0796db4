"""``mailer ses import-suppressions``: the SES account-level suppression list (here the
stand-in's, through the SES v2 API) into ours, and what it stops."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime

import boto3
import httpx
import pytest
from sqlalchemy import text

from mailer.config import ROOT
from tests import factories
from tests.campaign.conftest import launch, recipients
from tests.fixtures.workers import worker_env
from tests.message.test_send import INLINE, wait_final


def ses(url: str, region: str = "us-east-1"):  # type: ignore[no-untyped-def]
    return boto3.client(
        "sesv2",
        region_name=region,
        endpoint_url=url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def import_suppressions(settings, ses_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailer.cli", "ses", "import-suppressions", *args],
        env=worker_env(settings, ses_url, COLUMNS="200"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def suppressions(engine) -> dict[str, tuple[str, str, str]]:
    async with engine.connect() as conn:
        result = await conn.execute(text("SELECT email, reason, scope, source FROM suppressions"))
        return {r.email: (r.reason, r.scope, r.source) for r in result}


@pytest.fixture
async def tx(make_key) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"Authorization": f"Bearer {await make_key('transactional')}"}


async def test_imported_ses_suppressions_stop_sends_to_those_addresses(
    settings, engine, client: httpx.AsyncClient, tx, admin, clean_standin, start_worker
) -> None:
    account = ses(clean_standin.url)
    account.put_suppressed_destination(EmailAddress="Bounced@Example.test", Reason="BOUNCE")
    account.put_suppressed_destination(EmailAddress="complained@example.test", Reason="COMPLAINT")
    account.put_suppressed_destination(EmailAddress="widen@example.test", Reason="BOUNCE")
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO suppressions (email, reason, scope, source)"
                " VALUES ('widen@example.test', 'complaint', 'marketing', 'complaint')"
            )
        )

    dry = import_suppressions(settings, clean_standin.url, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "2 new, 0 already there, 1 widened to all (dry run: nothing changed)" in dry.stdout
    assert set(await suppressions(engine)) == {"widen@example.test"}

    done = import_suppressions(settings, clean_standin.url)
    assert done.returncode == 0, done.stderr
    assert "2 new, 0 already there, 1 widened to all" in done.stdout
    assert await suppressions(engine) == {
        "bounced@example.test": ("bounce (SES account suppression list)", "all", "ses"),
        "complained@example.test": (
            "complaint (SES account suppression list)",
            "marketing",
            "ses",
        ),
        "widen@example.test": ("bounce (SES account suppression list)", "all", "ses"),
    }
    again = import_suppressions(settings, clean_standin.url)
    assert "0 new, 3 already there, 0 widened to all" in again.stdout, again.stdout

    worker = start_worker()
    sends = [
        ("bounced@example.test", "transactional"),
        ("complained@example.test", "marketing"),
        ("complained@example.test", "transactional"),  # a complaint stops marketing only
        ("ada@example.test", "transactional"),
    ]
    ids = []
    for to, mail_class in sends:
        r = await client.post(
            "/v1/messages", headers=tx, json={**INLINE, "to": to, "mail_class": mail_class}
        )
        assert r.status_code == 202, r.text
        ids.append(r.json()["id"])
    statuses = [(await wait_final(client, tx, i, 60.0))["status"] for i in ids]
    assert statuses == ["suppressed", "suppressed", "sent", "sent"], worker.log()
    # both sent messages reached the stand-in: nothing else did
    assert recipients(clean_standin.control) == {
        "complained@example.test": 1,
        "ada@example.test": 1,
    }

    # a marketing campaign to all four as contacts: only ada is in its audience
    for email in ("bounced@example.test", "complained@example.test", "widen@example.test"):
        r = await client.put(f"/v1/contacts/{email}", headers=admin, json={})
        assert r.status_code == 201, r.text
    r = await client.put("/v1/contacts/ada@example.test", headers=admin, json={})
    assert r.status_code == 201, r.text
    campaign = await launch(client, admin)
    done = await factories.wait_for_status(client, admin, campaign["id"], {"completed"})
    assert (done["stats"]["recipients"], done["stats"]["sent"]) == (1, 1), worker.log()
    assert recipients(clean_standin.control) == {
        "complained@example.test": 1,
        "ada@example.test": 2,
    }


async def test_the_import_reads_every_page_and_keeps_the_date(settings, engine, clean_standin):
    account = ses(clean_standin.url, "eu-west-1")
    for i in range(1001):  # one more than a page
        account.put_suppressed_destination(EmailAddress=f"gone{i}@example.test", Reason="BOUNCE")
    listed = account.get_suppressed_destination(EmailAddress="gone0@example.test")
    when = listed["SuppressedDestination"]["LastUpdateTime"]
    result = import_suppressions(settings, clean_standin.url, "--region", "eu-west-1")
    assert result.returncode == 0, result.stderr
    assert "1,001 new" in result.stdout
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT count(*), min(created_at) FROM suppressions"))
        count, first = rows.one()
    assert count == 1001
    assert abs((first - when).total_seconds()) < 1 and first < datetime.now(UTC)


def test_the_emulator_lists_pages_filters_and_deletes(clean_standin) -> None:
    account = ses(clean_standin.url)
    assert account.list_suppressed_destinations()["SuppressedDestinationSummaries"] == []
    for address, reason in (
        ("a@example.test", "BOUNCE"),
        ("b@example.test", "COMPLAINT"),
        ("c@example.test", "BOUNCE"),
    ):
        account.put_suppressed_destination(EmailAddress=address, Reason=reason)
    page = account.list_suppressed_destinations(PageSize=2)
    assert [s["EmailAddress"] for s in page["SuppressedDestinationSummaries"]] == [
        "a@example.test",
        "b@example.test",
    ]
    rest = account.list_suppressed_destinations(PageSize=2, NextToken=page["NextToken"])
    assert [s["EmailAddress"] for s in rest["SuppressedDestinationSummaries"]] == ["c@example.test"]
    assert "NextToken" not in rest
    bounces = account.list_suppressed_destinations(Reasons=["BOUNCE"])
    assert {s["Reason"] for s in bounces["SuppressedDestinationSummaries"]} == {"BOUNCE"}
    # the list is the region's, as SES keeps it
    other = ses(clean_standin.url, "eu-west-1").list_suppressed_destinations()
    assert other["SuppressedDestinationSummaries"] == []
    account.delete_suppressed_destination(EmailAddress="a@example.test")
    with pytest.raises(account.exceptions.NotFoundException):
        account.get_suppressed_destination(EmailAddress="a@example.test")
    # the mailbox simulator's suppressionlist@ is not on the account's list (as in SES)
    with pytest.raises(account.exceptions.NotFoundException):
        account.get_suppressed_destination(EmailAddress="suppressionlist@simulator.amazonses.com")
