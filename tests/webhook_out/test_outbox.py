"""The outbox: events written with the facts they report, in the same statement."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from mailer.db import transaction
from mailer.sending import outcomes as sending
from mailer.webhook import repository as feedback
from mailer.webhook.ses import EventRow
from mailer.webhook_out import outbox
from mailer.webhook_out.schemas import EventType
from tests.webhook_out.conftest import add_endpoint, deliveries

TOKEN = "lease-of-the-test"


async def sending_message(
    sessionmaker: async_sessionmaker[AsyncSession],
    email: str = "reader@example.com",
    mail_class: str = "transactional",
    campaign_id: int | None = None,
) -> int:
    """A message under the test's lease, its SES call under way (as the send path leaves it)."""
    async with transaction(sessionmaker) as session:
        row = await session.execute(
            text(
                "INSERT INTO messages (email, mail_class, campaign_id, status, lease_token,"
                " lease_until, tags) VALUES (:email, :class, :campaign, 'sending', :token,"
                " now() + interval '1 minute', CAST(:tags AS jsonb)) RETURNING id"
            ),
            {
                "email": email,
                "class": mail_class,
                "campaign": campaign_id,
                "token": TOKEN,
                "tags": '{"flow": "reset"}',
            },
        )
        return int(row.scalar_one())


async def record_sent(
    sessionmaker: async_sessionmaker[AsyncSession], message_id: int, sid: str
) -> None:
    async with transaction(sessionmaker) as session:
        await sending.record(
            session, [sending.Outcome(message_id, "sent", sid=sid, region="us-east-1")], TOKEN
        )


def test_schema_names_every_event_type() -> None:
    assert set(EventType.__args__) == set(outbox.EVENT_TYPES) | set(outbox.FAMILIES)


async def test_send_path_writes_message_sent_with_the_outcome(
    sessionmaker: async_sessionmaker[AsyncSession], engine: AsyncEngine
) -> None:
    endpoint_id, _ = await add_endpoint(sessionmaker, "https://hooks.example.com/a")
    message_id = await sending_message(sessionmaker)

    await record_sent(sessionmaker, message_id, "ses-0001")

    [row] = await deliveries(engine)
    assert (row.endpoint_id, row.type, row.message_id, row.status) == (
        endpoint_id,
        "message.sent",
        message_id,
        "pending",
    )
    assert row.webhook_id.startswith("msg_")
    payload = row.payload
    assert payload["type"] == "message.sent"
    assert datetime.fromisoformat(payload["timestamp"]).tzinfo is not None
    assert payload["data"] == {
        "message_id": message_id,
        "ses_message_id": "ses-0001",
        "to": "reader@example.com",
        "mail_class": "transactional",
        "campaign_id": None,
        "region": "us-east-1",
        "tags": {"flow": "reset"},
        "error": None,
    }


async def test_a_failed_send_is_message_failed(
    sessionmaker: async_sessionmaker[AsyncSession], engine: AsyncEngine
) -> None:
    await add_endpoint(sessionmaker, "https://hooks.example.com/a")
    message_id = await sending_message(sessionmaker)
    async with transaction(sessionmaker) as session:
        await sending.record(
            session,
            [sending.Outcome(message_id, "failed", error="MessageRejected: bad address")],
            TOKEN,
        )
    [row] = await deliveries(engine)
    assert row.type == "message.failed"
    assert row.payload["data"]["error"] == "MessageRejected: bad address"


async def test_no_endpoint_no_outbox_row(
    sessionmaker: async_sessionmaker[AsyncSession], engine: AsyncEngine
) -> None:
    message_id = await sending_message(sessionmaker)
    await record_sent(sessionmaker, message_id, "ses-0002")
    assert await deliveries(engine) == []


async def test_subscriptions_filter_types_families_classes_and_campaigns(
    sessionmaker: async_sessionmaker[AsyncSession], engine: AsyncEngine
) -> None:
    every, _ = await add_endpoint(sessionmaker, "https://a.example.com/")
    family, _ = await add_endpoint(
        sessionmaker, "https://b.example.com/", event_types=["message.*"]
    )
    other_type, _ = await add_endpoint(
        sessionmaker, "https://c.example.com/", event_types=["message.bounced"]
    )
    other_class, _ = await add_endpoint(
        sessionmaker, "https://d.example.com/", mail_classes=["marketing"]
    )
    other_campaign, _ = await add_endpoint(
        sessionmaker, "https://e.example.com/", campaign_ids=[12345]
    )
    message_id = await sending_message(sessionmaker)
    await record_sent(sessionmaker, message_id, "ses-0003")
    assert sorted(r.endpoint_id for r in await deliveries(engine)) == [every, family]
    del other_type, other_class, other_campaign


async def test_a_rolled_back_send_reports_nothing(
    sessionmaker: async_sessionmaker[AsyncSession], engine: AsyncEngine
) -> None:
    await add_endpoint(sessionmaker, "https://hooks.example.com/a")
    message_id = await sending_message(sessionmaker)

    class Abort(Exception):
        pass

    with pytest.raises(Abort):
        async with transaction(sessionmaker) as session:
            moved = await sending.record(
                session, [sending.Outcome(message_id, "sent", sid="ses-rb")], TOKEN
            )
            assert moved == 1
            # inside the transaction the event is there, with the fact
            inside = await session.execute(text("SELECT count(*) FROM webhook_deliveries"))
            assert inside.scalar_one() == 1
            raise Abort

    assert await deliveries(engine) == []
    async with engine.connect() as conn:
        status = await conn.scalar(
            text("SELECT status FROM messages WHERE id = :id"), {"id": message_id}
        )
    assert status == "sending"


def _event(kind: str, sid: str, subtype: str | None = None, **data: object) -> EventRow:
    return EventRow(
        kind,
        sid,
        "reader@example.com",
        subtype,
        datetime(2026, 12, 7, 12, 0, tzinfo=UTC),
        f"{kind}:{sid}:{subtype}:{sorted(data.items())}",
        dict(data),
    )


async def test_feedback_loop_writes_message_events_once(
    sessionmaker: async_sessionmaker[AsyncSession], engine: AsyncEngine
) -> None:
    await add_endpoint(sessionmaker, "https://hooks.example.com/a")
    message_id = await sending_message(sessionmaker)
    await record_sent(sessionmaker, message_id, "ses-0004")

    for _ in range(2):  # a replayed notification adds nothing
        async with transaction(sessionmaker) as session:
            await feedback.apply_events(session, "delivery", [(1, _event("delivery", "ses-0004"))])
            await feedback.apply_events(
                session,
                "bounce",
                [(1, _event("bounce", "ses-0004", "Permanent", bounceSubType="General"))],
            )
            await feedback.apply_events(
                session,
                "click",
                [(1, _event("click", "ses-0004", link="https://example.com/x"))],
            )
            await feedback.apply_events(session, "send", [(1, _event("send", "ses-0004"))])

    rows = await deliveries(engine)
    assert [r.type for r in rows] == [
        "message.sent",
        "message.delivered",
        "message.bounced",
        "suppression.created",  # the hard bounce suppressed the address, same statement
        "message.clicked",
    ]
    bounced = rows[2].payload
    assert bounced["timestamp"] == "2026-12-07T12:00:00.000000Z"
    assert bounced["data"]["bounce_type"] == "hard"
    assert bounced["data"]["bounce_subtype"] == "General"
    assert bounced["data"]["ses_message_id"] == "ses-0004"
    assert rows[3].payload["data"]["email"] == "reader@example.com"
    assert rows[4].payload["data"]["link"] == "https://example.com/x"
    assert {r.message_id for r in rows} == {message_id, None}


async def test_unknown_ses_id_reports_nothing(
    sessionmaker: async_sessionmaker[AsyncSession], engine: AsyncEngine
) -> None:
    await add_endpoint(sessionmaker, "https://hooks.example.com/a")
    async with transaction(sessionmaker) as session:
        await feedback.apply_events(session, "delivery", [(1, _event("delivery", "not-ours"))])
    assert await deliveries(engine) == []
