"""``mailer ses check`` and ``mailer ses policy`` (issue 20, item 1)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from typer.testing import CliRunner

from mailer.cli import app
from tests import factories
from tests.ses.conftest import TOPIC, Stack

SETUP = ("ses", "setup", "--domain", "example.com", "--allow-http", "--wait", "20")


def facts_of(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"{f['region'] or '-'} {f['subject']}": f for f in report["facts"]}


def test_check_reports_each_missing_piece_with_its_fix(stack: Stack) -> None:
    code, report = stack.run_json(
        "ses",
        "check",
        MAILER_SECRET_KEY="dev-secret-change-me",
        MAILER_CONFIGURATION_SETS="transactional=transactional,marketing=bulk",
    )
    assert code == 1
    assert report["ok"] is False
    facts = facts_of(report)
    failed = {k for k, f in facts.items() if f["status"] == "fail"}
    assert failed == {
        "us-east-1 identity",
        "us-east-1 configuration set transactional (transactional)",
        "us-east-1 configuration set bulk (marketing)",
        "us-east-1 SNS topic",
        "- MAILER_PUBLIC_URL",
        "- MAILER_SECRET_KEY",
    }
    assert all(facts[k]["fix"] for k in failed)
    assert facts["us-east-1 configuration set bulk (marketing)"]["detail"] == "does not exist"
    assert (
        "bounce, complaint, delivery"
        in (facts["us-east-1 configuration set transactional (transactional)"]["detail"])
    )
    assert "mailer ses setup" in facts["us-east-1 identity"]["fix"]
    for ok in ("credentials", "sending", "enforcement", "quota", "production access"):
        assert facts[f"us-east-1 {ok}"]["status"] == "ok"

    done = stack.run("ses", "check", "--allow-http")
    assert done.returncode == 1
    assert "✗ us-east-1  identity: no domain identity" in done.stdout
    assert "    fix: mailer ses setup --domain <your domain> --region us-east-1" in done.stdout


def test_check_is_all_green_after_setup(stack: Stack) -> None:
    assert stack.run(*SETUP).returncode == 0
    code, report = stack.run_json("ses", "check", "--allow-http")
    assert code == 0, report
    facts = facts_of(report)
    assert [k for k, f in facts.items() if f["status"] == "fail"] == []
    for key in (
        "us-east-1 identity example.com",
        "us-east-1 DKIM example.com",
        "us-east-1 MAIL FROM mail.example.com",
        "us-east-1 configuration set marketing (marketing)",
        f"us-east-1 topic {TOPIC}",
        f"us-east-1 topic policy {TOPIC}",
        f"us-east-1 subscription {stack.api_url}/webhooks/sns",
        "- MAILER_SECRET_KEY",
    ):
        assert facts[key]["status"] == "ok", facts[key]
    # http is only a warning with --allow-http (a local stack), not a pass
    assert facts["- MAILER_PUBLIC_URL"]["status"] == "warn"
    # no DMARC record: a warning with the record to publish (DNS on loopback: stack.dns)
    dmarc = facts["- DMARC example.com"]
    assert dmarc["status"] == "warn" and "no DMARC record at _dmarc.example.com" in dmarc["detail"]
    assert (
        'TXT _dmarc.example.com "v=DMARC1; p=none; rua=mailto:dmarc-reports@example.com"'
        in (dmarc["fix"])
    )
    assert stack.dns.questions[-1] == "_dmarc.example.com"
    # MAIL FROM (SPF alignment) is reported too
    assert facts["us-east-1 MAIL FROM mail.example.com"]["detail"] == "SUCCESS"

    stack.dns.txt["_dmarc.example.com"] = ["v=DMARC1; p=quarantine"]
    done = stack.run("ses", "check", "--allow-http")
    assert done.returncode == 0
    assert "✓ DMARC example.com: v=DMARC1; p=quarantine" in done.stdout


def test_check_fails_a_pending_subscription(stack: Stack) -> None:
    assert stack.run(*SETUP).returncode == 0
    sns = stack.client("sns")
    [sub] = sns.list_subscriptions_by_topic(TopicArn=TOPIC)["Subscriptions"]
    sns.unsubscribe(SubscriptionArn=sub["SubscriptionArn"])
    code, report = stack.run_json("ses", "check", "--allow-http")
    assert code == 1
    fact = facts_of(report)[f"us-east-1 subscription {stack.api_url}/webhooks/sns"]
    assert (fact["status"], fact["detail"]) == ("fail", "absent")


async def test_check_names_a_campaign_sender_on_no_verified_identity(
    stack: Stack, admin: dict[str, str]
) -> None:
    assert stack.run(*SETUP).returncode == 0
    ses = stack.client("sesv2")
    # verified when the campaign was made and launched, deleted since
    ses.create_email_identity(EmailIdentity="other.test")
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=30) as client:
        for sender in ("News <news@other.test>", "news@example.com"):
            campaign = await factories.campaign(client, admin, from_address=sender, send_at=later)
            r = await client.post(f"/v1/campaigns/{campaign['id']}/send", headers=admin)
            assert (r.status_code, r.json()["status"]) == (202, "scheduled"), r.text
    ses.delete_email_identity(EmailIdentity="other.test")
    code, report = stack.run_json("ses", "check", "--allow-http")
    assert code == 1
    facts = facts_of(report)
    assert facts["us-east-1 From news@other.test"]["status"] == "fail"
    assert "--domain other.test" in facts["us-east-1 From news@other.test"]["fix"]
    assert facts["us-east-1 From news@example.com"]["status"] == "ok"
    # each From domain's DMARC record is looked for
    assert facts["- DMARC other.test"]["status"] == "warn"


async def test_the_api_refuses_a_sender_without_dkim_until_setup_made_it(
    stack: Stack, admin: dict[str, str]
) -> None:
    """Alignment at the door, end to end: a real API asking the emulator's SES."""
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=30) as client:
        template = await factories.template(client, admin)
        segment = await factories.segment(client, admin)
        body = {
            "name": "news",
            "template_id": template["id"],
            "segment_id": segment["id"],
            "from_address": "News <news@aligned.test>",
        }
        r = await client.post("/v1/campaigns", headers=admin, json=body)
        assert r.status_code == 422, r.text
        error = r.json()["error"]
        assert error["code"] == "sender_not_verified"
        assert "mailer ses setup --domain aligned.test" in error["message"]
        assert error["details"][0]["identity"] == "no SES identity"
        message = {"to": "ann@example.com", "from_address": "news@aligned.test"}
        message |= {"subject": "Hi", "html": "<p>Hi</p>"}
        r = await client.post("/v1/messages", headers=admin, json=message)
        assert (r.status_code, r.json()["error"]["code"]) == (422, "sender_not_verified")

        # setup makes the identity with Easy DKIM (the emulator verifies at once); the API
        # reads the domain again within MAILER_SENDER_CHECK_SECONDS (2 s here)
        done = stack.run("ses", "setup", "--domain", "aligned.test", "--allow-http", "--wait", "20")
        assert done.returncode == 0, done.stdout + done.stderr
        await asyncio.sleep(2.2)
        r = await client.post("/v1/campaigns", headers=admin, json=body)
        assert r.status_code == 201, r.text
        r = await client.post("/v1/messages", headers=admin, json=message)
        assert r.status_code == 202, r.text


def test_policy_is_scoped_to_the_named_resources() -> None:
    result = CliRunner().invoke(
        app,
        ["ses", "policy", "--domain", "example.com", "--account-id", "123456789012"],
    )
    assert result.exit_code == 0, result.output
    documents = json.loads(result.output)
    running = {s["Sid"]: s for s in documents["running"]["Statement"]}
    send = running["SendFromTheIdentitiesThroughTheConfigurationSets"]
    assert send["Action"] == ["ses:SendEmail"]
    assert sorted(send["Resource"]) == [
        "arn:aws:ses:us-east-1:123456789012:configuration-set/marketing",
        "arn:aws:ses:us-east-1:123456789012:configuration-set/transactional",
        "arn:aws:ses:us-east-1:123456789012:identity/example.com",
    ]
    assert running["ReadTheAccountQuota"] == {
        "Sid": "ReadTheAccountQuota",
        "Effect": "Allow",
        "Action": ["ses:GetAccount"],
        "Resource": "*",
    }
    assert running["ListTheVerifiedIdentities"]["Action"] == ["ses:ListEmailIdentities"]
    for statement in documents["setup"]["Statement"]:
        if statement["Sid"] != "ReadsWithoutAResource":
            assert all("123456789012" in r for r in statement["Resource"]), statement
            assert not any(a.endswith("*") for a in statement["Action"])
        else:
            assert all(
                a.startswith(("ses:Get", "ses:List", "sns:List")) for a in statement["Action"]
            )


def test_check_fails_identities_whose_dns_records_are_not_published(stack: Stack) -> None:
    pending = httpx.post(f"{stack.emulator.url}/_standin/account", json={"verify": False})
    assert pending.json() == {"verify": False}
    assert stack.run(*SETUP).returncode == 0
    code, report = stack.run_json("ses", "check", "--allow-http", "--domain", "example.com")
    assert code == 1
    facts = facts_of(report)
    for key, detail, fix in (
        ("identity example.com", "not verified (PENDING)", "DKIM records"),
        ("DKIM example.com", "PENDING", "three CNAMEs"),
        ("MAIL FROM mail.example.com", "PENDING", "MX and SPF"),
    ):
        fact = facts[f"us-east-1 {key}"]
        assert (fact["status"], fact["detail"]) == ("fail", detail)
        assert fix in fact["fix"] and "mailer ses setup --domain example.com" in fact["fix"]
    # the records are published: SES verifies, and the check passes
    httpx.post(f"{stack.emulator.url}/_standin/account", json={"verify": True})
    assert stack.run("ses", "check", "--allow-http", "--domain", "example.com").returncode == 0
