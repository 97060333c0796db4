"""Each worker's own /metrics (``MAILER_WORKER_METRICS_PORT``), token-protected, with its
children's counters; the API's ``mailer_workers_seen`` from the workers' heartbeats."""

from __future__ import annotations

import asyncio
import os
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures.api import free_port
from tests.fixtures.workers import WorkerProcess, worker_env
from tests.message.test_send import INLINE, wait_final
from tests.ops.test_metrics import Samples, scrape, total

TOKEN = "metrics-token-for-tests"


def parse(body: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def wait_listening(url: str, worker, within: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within
    async with httpx.AsyncClient() as http:
        while time.monotonic() < deadline:
            try:
                await http.get(url)
                return
            except httpx.TransportError:
                assert worker.process.poll() is None, worker.log()
                await asyncio.sleep(0.2)
    raise AssertionError(f"the worker's /metrics did not listen: {worker.log()}")


@pytest.fixture
async def tx(make_key) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"Authorization": f"Bearer {await make_key('transactional')}"}


async def test_a_worker_serves_its_own_and_its_childrens_counters_behind_the_token(
    settings, client, tx, clean_standin, monkeypatch, tmp_path, request
) -> None:
    # no multiprocess directory shared with an API: the worker sets up its own
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    port = free_port()
    env = worker_env(
        settings,
        clean_standin.url,
        MAILER_WORKER_METRICS_HOST="127.0.0.1",
        MAILER_METRICS_TOKEN=TOKEN,
    )
    worker = WorkerProcess(env, tmp_path / "worker.log", "--metrics-port", str(port))
    request.addfinalizer(worker.stop)
    url = f"http://127.0.0.1:{port}/metrics"
    await wait_listening(url, worker)
    r = await client.post("/v1/messages", headers=tx, json=INLINE)
    assert (await wait_final(client, tx, r.json()["id"], 60.0))["status"] == "sent"
    async with httpx.AsyncClient() as http:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            refused = await http.get(url, headers=headers)
            assert refused.status_code == 401, headers
            assert refused.json()["error"]["code"] == "unauthorized"
            assert "mailer_sends" not in refused.text
        ok = await http.get(url, headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200 and ok.headers["content-type"].startswith("text/plain")
    # the transactional lane runs in a child process: its count reaches the parent's page
    samples = parse(ok.text)
    assert total(samples, "mailer_sends_total", mail_class="transactional", outcome="sent") == 1
    assert total(samples, "mailer_ses_call_seconds_count", operation="SendEmail") >= 1


async def test_the_api_says_when_it_sees_no_worker(client, clean_standin, start_worker) -> None:
    queues = ("send", "transactional", "events", "imports")
    before = await scrape(client)
    assert [total(before, "mailer_workers_seen", queue=q) for q in queues] == [0, 0, 0, 0]
    worker = start_worker()
    deadline = time.monotonic() + 60
    while True:
        seen = await scrape(client)
        # the parent beats for send and events, each child for its own queue
        if all(total(seen, "mailer_workers_seen", queue=q) == 1 for q in queues):
            break
        assert time.monotonic() < deadline, (seen, worker.log())
        await asyncio.sleep(0.2)
    worker.stop()
    after = await scrape(client)  # a stopped worker takes its heartbeats with it
    assert [total(after, "mailer_workers_seen", queue=q) for q in queues] == [0, 0, 0, 0]


def test_a_worker_will_not_serve_metrics_to_the_network_without_a_token(
    start_worker, monkeypatch
) -> None:
    monkeypatch.delenv("MAILER_METRICS_TOKEN", raising=False)
    worker = start_worker(
        MAILER_WORKER_METRICS_PORT=str(free_port()), MAILER_WORKER_METRICS_HOST="0.0.0.0"
    )
    assert worker.process.wait(60) == 2
    assert "MAILER_METRICS_TOKEN" in worker.log()
    assert os.environ.get("MAILER_METRICS_TOKEN") is None
