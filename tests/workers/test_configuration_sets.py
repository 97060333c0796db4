"""A worker checks its configuration sets at start (issue 20, item 2): a missing one is
one clear error, its mail class sends nothing and fails nothing, and sends once it exists."""

from __future__ import annotations

import asyncio
import time

import boto3
import httpx
import pytest

from tests.message.test_send import INLINE, wait_final


@pytest.fixture
async def tx(make_key) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"Authorization": f"Bearer {await make_key('transactional')}"}


async def wait_until(predicate, what: str, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def test_a_missing_configuration_set_holds_its_class_until_it_exists(
    client: httpx.AsyncClient, tx: dict[str, str], clean_standin, start_worker
) -> None:
    worker = start_worker(
        MAILER_CONFIGURATION_SETS="transactional=tx-not-yet,marketing=marketing",
        MAILER_ACCOUNT_POLL_SECONDS="1",
        MAILER_ACCOUNT_HOLD_SECONDS="1",
    )

    def errors() -> list[str]:
        return [line for line in worker.log().splitlines() if "configuration_set_missing" in line]

    # reported at start, before any mail: one error naming the set and the class from
    # each process (the worker and its transactional child, which has its own senders)
    await wait_until(lambda: len(errors()) == 2, "the start-up errors", timeout=60)
    assert all("tx-not-yet" in e and "mail_class=transactional" in e for e in errors())

    held = await client.post("/v1/messages", headers={**tx, "Idempotency-Key": "a"}, json=INLINE)
    other = await client.post(
        "/v1/messages",
        headers={**tx, "Idempotency-Key": "b"},
        json={**INLINE, "mail_class": "marketing"},
    )
    assert held.status_code == other.status_code == 202
    # the positive event: mail of a class whose set exists goes out (after the held one
    # was claimed, the worker taking its queue in order)
    sent = await wait_final(client, tx, other.json()["id"], timeout=60)
    assert sent["status"] == "sent", worker.log()
    body = (await client.get(f"/v1/messages/{held.json()['id']}", headers=tx)).json()
    assert body["status"] == "queued", body  # held, not failed
    calls = clean_standin.control.stats()["totals"]["calls"]
    assert calls == 1, worker.log()  # SES was never asked to send with the missing set

    boto3.client(
        "sesv2",
        region_name="us-east-1",
        endpoint_url=clean_standin.url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106
    ).create_configuration_set(ConfigurationSetName="tx-not-yet")
    done = await wait_final(client, tx, held.json()["id"], timeout=60)
    assert done["status"] == "sent", worker.log()
    [call] = [
        m for m in clean_standin.control.messages() if m["MessageId"] == done["ses_message_id"]
    ]
    assert call["ConfigurationSetName"] == "tx-not-yet"
    assert "configuration_set_found" in worker.log()
