"""POST /webhooks/sns is served before the middleware stack (``MailerAPI``): it keeps what
the stack gives every route — a request id, the 500 envelope, the JSON guard."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest

from tests.fixtures.sns import Signer, ses_event
from tests.webhook.conftest import post


def delivery() -> dict[str, Any]:
    return ses_event("Delivery", "0100-unknown", ["a@example.test"])


async def test_answers_carry_a_request_id(client, sns_signer: Signer) -> None:
    ok = await post(client, sns_signer.notification(delivery()))
    assert ok.status_code == 200, ok.text
    assert ok.headers["content-type"] == "application/json"
    assert len(ok.headers["x-request-id"]) == 32
    given = await client.post(
        "/webhooks/sns", content=b"{}", headers={"x-request-id": "sns-retry-1"}
    )
    assert given.status_code == 400
    assert given.headers["x-request-id"] == "sns-retry-1"
    assert set(given.json()["error"]) == {"code", "message", "details"}


async def test_an_unexpected_error_is_a_500_envelope(
    app, client, sns_signer: Signer, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken:
        async def store(self, *_: object) -> bool:
            raise RuntimeError("something nobody planned for")

    real, app.state.sns_store = app.state.sns_store, Broken()
    try:
        with caplog.at_level(logging.ERROR, logger="mailer.middleware"):
            r = await post(client, sns_signer.notification(delivery()))
    finally:
        app.state.sns_store = real
    assert r.status_code == 500
    assert r.json()["error"]["code"] == "internal"
    assert r.json()["error"]["request_id"] == r.headers["x-request-id"]
    assert "something nobody planned for" not in r.text
    assert "something nobody planned for" in caplog.text


async def test_a_json_body_goes_through_the_json_guard(client, sns_signer: Signer) -> None:
    message = sns_signer.notification(delivery())
    message["Message"] = "nul \u0000 here"
    r = await client.post(
        "/webhooks/sns",
        content=json.dumps(message),
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid"


async def test_other_methods_still_go_through_the_router(client: httpx.AsyncClient) -> None:
    r = await client.get("/webhooks/sns")
    assert r.status_code == 405
    assert r.headers["x-request-id"]
    assert r.json()["error"]["code"] == "method_not_allowed"
