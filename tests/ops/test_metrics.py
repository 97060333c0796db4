"""/metrics: prometheus text of the API and every worker (multiprocess files), after a
small campaign with throttling and events, parsed with prometheus-client's own parser."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from mailer.local.standin_client import fault
from tests import factories
from tests.campaign.conftest import seed_contacts
from tests.conftest import TEST_METRICS_TOKEN
from tests.ops.test_metric_families import promtool_check
from tests.reputation.helpers import notify, sent_messages, wait_processed

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(client) -> Samples:  # type: ignore[no-untyped-def]
    r = await client.get("/metrics", headers={"Authorization": f"Bearer {TEST_METRICS_TOKEN}"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    out: Samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum over the samples of ``name`` that carry at least these labels."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


async def test_metrics_cover_the_api_and_the_workers(
    app, client, admin, engine, sns_signer, clean_standin, start_worker, tmp_path: Path
):
    control = clean_standin.control
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    app.state.settings = app.state.settings.model_copy(update={"metrics_dir": metrics_dir})
    before = await scrape(client)

    control.set_rates({"us-east-1": 200})
    control.set_faults([fault("throttle", count=3)])
    await seed_contacts(engine, 20)
    start_worker(
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
        MAILER_REGIONS="us-east-1",
        MAILER_ACCOUNT_POLL_SECONDS="0.5",
    )
    campaign = await factories.campaign(client, admin)
    cid = campaign["id"]
    r = await client.post(f"/v1/campaigns/{cid}/send", headers=admin)
    assert r.status_code == 202
    await factories.wait_for_status(client, admin, cid, {"completed"}, 60)

    sent = await sent_messages(engine, cid, 20)
    ids = [await notify(client, sns_signer, "Bounce", sid, email) for sid, email in sent[:2]]
    ids.append(await notify(client, sns_signer, "Complaint", *sent[2]))
    ids += [await notify(client, sns_signer, "Delivery", sid, email) for sid, email in sent[3:8]]
    await wait_processed(engine, ids)

    # SES's rate changes: the worker's limiter takes it up without a restart
    control.set_rates({"us-east-1": 300})
    deadline = time.monotonic() + 30
    while True:
        after = await scrape(client)
        if value(after, "mailer_rate_limit_per_second", region="us-east-1") == 300:
            break
        assert time.monotonic() < deadline, "the new SES rate never reached the limiter"
        await asyncio.sleep(0.2)
    # once more: that scrape read PostgreSQL before the worker stored the new rate
    after = await scrape(client)
    promtool_check(
        (
            await client.get("/metrics", headers={"Authorization": f"Bearer {TEST_METRICS_TOKEN}"})
        ).text
    )

    def delta(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    # sends by class, region and outcome (the worker's files)
    assert (
        delta("mailer_sends_total", mail_class="marketing", region="us-east-1", outcome="sent")
        == 20
    )
    assert delta("mailer_sends_total", outcome="throttled") == 3
    # SES errors by code, throttles, the SES call latency histogram
    assert delta("mailer_ses_errors_total", operation="SendEmail") == 3
    assert (
        delta("mailer_ses_errors_total", operation="SendEmail", code="TooManyRequestsException")
        == 3
    )
    assert delta("mailer_ses_throttles_total", region="us-east-1") == 3
    assert delta("mailer_ses_call_seconds_count", region="us-east-1", operation="SendEmail") == 23
    assert (
        delta(
            "mailer_ses_call_seconds_bucket", region="us-east-1", operation="SendEmail", le="+Inf"
        )
        == 23
    )
    # rate slots used against the configured rate
    assert delta("mailer_rate_slots_total", region="us-east-1") >= 23
    # events by type (the events worker), suppressions, reputation
    assert delta("mailer_events_total", type="bounce") == 2
    assert delta("mailer_events_total", type="complaint") == 1
    assert delta("mailer_events_total", type="delivery") == 5
    assert value(after, "mailer_suppressions", scope="all") == 2
    assert value(after, "mailer_suppressions", scope="marketing") == 1
    labels = {"mail_class": "marketing", "region": "us-east-1"}
    assert value(after, "mailer_reputation_sent", window="24h", **labels) == 20
    assert value(after, "mailer_reputation_rate", kind="bounce", window="1h", **labels) == 0.1
    assert value(after, "mailer_reputation_rate", kind="complaint", window="24h", **labels) == 0.05
    # campaign progress, queue depths, region quota (GetAccount, stored by the worker)
    assert (
        value(
            after, "mailer_campaign_messages", campaign_id=str(cid), status="completed", stat="sent"
        )
        == 20
    )
    assert (
        value(
            after,
            "mailer_campaign_messages",
            campaign_id=str(cid),
            status="completed",
            stat="bounced",
        )
        == 2
    )
    assert value(after, "mailer_campaign_progress", campaign_id=str(cid), status="completed") == 1.0
    for queue in ("arq:send", "arq:transactional", "arq:events", "arq:imports"):
        assert ("mailer_queue_depth", (("queue", queue),)) in after
    assert value(after, "mailer_region_send_rate", region="us-east-1") == 300
    assert value(after, "mailer_region_quota_24h", region="us-east-1") > 0
    async with engine.connect() as conn:
        stored = (
            await conn.execute(
                text(
                    "SELECT max_send_rate, sending_enabled, enforcement_status, production_access"
                    " FROM region_accounts WHERE region = 'us-east-1'"
                )
            )
        ).one()
    assert tuple(stored) == (300.0, True, "HEALTHY", True)


async def test_metrics_need_the_bearer_token(app, client, settings) -> None:  # type: ignore[no-untyped-def]
    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    r = await client.get("/metrics")
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    assert "mailer_" not in r.text
    for wrong in (bearer("wrong"), bearer(TEST_METRICS_TOKEN[:-1]), {"Authorization": "Basic x"}):
        assert (await client.get("/metrics", headers=wrong)).status_code == 401
    assert (await client.get("/metrics", headers=bearer(TEST_METRICS_TOKEN))).status_code == 200

    # without MAILER_METRICS_TOKEN nobody is served
    app.state.settings = settings.model_copy(update={"metrics_token": None})
    r = await client.get("/metrics", headers=bearer(TEST_METRICS_TOKEN))
    assert r.status_code == 404 and "MAILER_METRICS_TOKEN" in r.json()["error"]["message"]
