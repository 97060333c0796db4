"""The audience fix-up in id-range parts on several connections: the same audience as one
statement, nothing sendable until the launch commits, and a re-run after an interrupted
fix-up gives exactly one message per recipient."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from mailer.campaign import audience_fixup, repository, tasks
from mailer.db import transaction
from tests import factories
from tests.campaign.conftest import launch, recipients, seed_contacts


class Interrupted(Exception):
    pass


async def _audience(engine, n: int = 120) -> set[str]:  # type: ignore[no-untyped-def]
    """``n`` contacts, every 7th unsubscribed and every 5th suppressed; the eligible ones."""
    emails = await seed_contacts(engine, n)
    unsubscribed = set(emails[::7])
    suppressed = set(emails[1::5])
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE contacts SET status = 'unsubscribed' WHERE email = ANY(:e)"),
            {"e": sorted(unsubscribed)},
        )
        await conn.execute(
            text(
                "INSERT INTO suppressions (email, reason) "
                "SELECT unnest(CAST(:e AS text[])), 'bounce'"
            ),
            {"e": sorted(suppressed)},
        )
    return set(emails) - unsubscribed - suppressed


async def _messages(engine, campaign_id: int) -> list[tuple[int, int, str]]:  # type: ignore[no-untyped-def]
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT id, contact_id, email FROM messages WHERE campaign_id = :id"),
            {"id": campaign_id},
        )
        return [(r.id, r.contact_id, r.email) for r in rows]


async def _campaign_row(engine, campaign_id: int):  # type: ignore[no-untyped-def]
    async with engine.connect() as conn:
        return (
            await conn.execute(
                text(
                    "SELECT c.status, c.audience_fixed_at, c.first_message_id, "
                    "c.last_message_id, s.recipients, s.suppressed, s.queued "
                    "FROM campaigns c JOIN campaign_stats s ON s.campaign_id = c.id "
                    "WHERE c.id = :id"
                ),
                {"id": campaign_id},
            )
        ).one()


def test_contact_ids_split_into_equal_parts_of_a_minimum_size() -> None:
    assert repository._split(1, 100, 2, 1) == [(1, 50), (51, 100)]
    assert repository._split(1, 101, 2, 1) == [(1, 51), (52, 101)]
    assert repository._split(1, 100, 2, 60) == [(1, 100)]  # too few for two parts
    assert repository._split(1, 100, 1, 1) == [(1, 100)]
    assert repository._split(7, 7, 2, 1) == [(7, 7)]
    assert repository._split(None, None, 2, 1) == []


@pytest.mark.parametrize("connections", [1, 2])
async def test_fix_up_in_parts_gives_one_message_per_eligible_contact(
    client, admin, engine, sessionmaker, connections
):
    eligible = await _audience(engine)
    campaign = await launch(client, admin)
    async with transaction(sessionmaker) as session:
        fixed = await audience_fixup.fix_audience(
            session, campaign["id"], connections=connections, part_min=1
        )
        assert fixed is not None
    messages = await _messages(engine, campaign["id"])
    assert sorted(e for _, _, e in messages) == sorted(eligible)
    assert len({c for _, c, _ in messages}) == len(messages)
    row = await _campaign_row(engine, campaign["id"])
    assert row.audience_fixed_at is not None
    assert (row.first_message_id, row.last_message_id) == (
        min(i for i, _, _ in messages),
        max(i for i, _, _ in messages),
    )
    assert (row.recipients, row.queued) == (len(eligible), len(eligible))
    assert row.suppressed == 24 - len(set(range(1, 120, 5)) & set(range(0, 120, 7)))


@pytest.mark.parametrize("rerun_connections", [1, 2])
async def test_an_interrupted_fix_up_sends_nothing_and_a_rerun_gives_exactly_one_each(
    client, admin, engine, sessionmaker, redis, settings, rerun_connections
):
    eligible = await _audience(engine)
    campaign = await launch(client, admin)
    # the parts commit on their own connections; the launch's transaction then fails
    with pytest.raises(Interrupted):
        async with transaction(sessionmaker) as session:
            await audience_fixup.fix_audience(session, campaign["id"], connections=2, part_min=1)
            raise Interrupted
    leftovers = await _messages(engine, campaign["id"])
    assert len(leftovers) == len(eligible)  # both parts had committed
    row = await _campaign_row(engine, campaign["id"])
    assert row.status == "sending"
    assert row.audience_fixed_at is None and row.first_message_id is None
    assert row.recipients == 0
    # nothing is handed out or completed while the audience is not fixed
    async with sessionmaker() as session:
        half_launched = await repository.get(session, campaign["id"])
    assert half_launched is not None
    assert await tasks.dispatch_campaign(settings, sessionmaker, redis, half_launched) == 0
    assert (await _campaign_row(engine, campaign["id"])).status == "sending"

    async with transaction(sessionmaker) as session:
        await audience_fixup.fix_audience(
            session, campaign["id"], connections=rerun_connections, part_min=1
        )
    messages = await _messages(engine, campaign["id"])
    assert sorted(e for _, _, e in messages) == sorted(eligible)
    assert not {i for i, _, _ in messages} & {i for i, _, _ in leftovers}
    row = await _campaign_row(engine, campaign["id"])
    assert row.recipients == len(eligible)
    assert (row.first_message_id, row.last_message_id) == (
        min(i for i, _, _ in messages),
        max(i for i, _, _ in messages),
    )
    # fixed once: asked again, nothing changes
    async with transaction(sessionmaker) as session:
        await audience_fixup.fix_audience(session, campaign["id"], connections=2, part_min=1)
    assert sorted(await _messages(engine, campaign["id"])) == sorted(messages)


async def test_a_worker_fixing_in_parts_sends_each_recipient_once(
    client, admin, engine, clean_standin, start_worker
):
    eligible = await _audience(engine, 200)
    worker = start_worker(MAILER_AUDIENCE_FIXUP_CONNECTIONS="2", MAILER_AUDIENCE_FIXUP_PART_MIN="1")
    campaign = await launch(client, admin)
    done = await factories.wait_for_status(client, admin, campaign["id"], {"completed"}, 60)
    assert done["stats"]["recipients"] == len(eligible), worker.log()
    assert done["stats"]["sent"] == len(eligible)
    assert recipients(clean_standin.control) == dict.fromkeys(eligible, 1)
