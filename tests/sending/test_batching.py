"""GroupWriter: items of concurrent tasks written together, each caller answered by the
flush that held its item."""

from __future__ import annotations

import asyncio

import pytest

from mailer.batching import GroupWriter


async def test_with_max_in_flight_items_wait_for_the_flush_under_way() -> None:
    batches: list[list[int]] = []
    gate = asyncio.Event()

    async def flush(items: list[int]) -> set[int]:
        batches.append(items)
        if len(batches) == 1:
            await gate.wait()
        return set(items)

    writer: GroupWriter[int, set[int]] = GroupWriter(
        flush, delay=0.0, max_items=100, max_in_flight=1
    )
    first = asyncio.ensure_future(writer.submit(1))
    await asyncio.sleep(0.01)
    assert batches == [[1]]  # an idle writer flushes at once
    later = [asyncio.ensure_future(writer.submit(i)) for i in (2, 3, 4)]
    await asyncio.sleep(0.01)
    assert batches == [[1]]  # held while the first flush is under way
    gate.set()
    assert await first == {1}
    assert await asyncio.gather(*later) == [{2, 3, 4}] * 3
    assert batches == [[1], [2, 3, 4]]  # together, as soon as the first one ended


async def test_a_failed_flush_fails_every_item_in_it() -> None:
    async def flush(items: list[int]) -> None:
        raise RuntimeError("database away")

    writer: GroupWriter[int, None] = GroupWriter(flush, delay=0.0, max_items=10, max_in_flight=2)
    results = await asyncio.gather(*(writer.submit(i) for i in range(3)), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    with pytest.raises(RuntimeError):
        await writer.submit(9)  # and the writer goes on taking items
