"""The asynchronous insert queue's batching, as a pure unit: the inserts are a stand-in that records them.

What goes through the real server (exactly once, bad batches refused alone, settings) is in
test_async_inserts.py; here, which bodies end up in which insert.
"""

from __future__ import annotations

import asyncio

from embedded.async_inserts import AsyncInsertQueue

KEY = ("default", "db", b"INSERT INTO t FORMAT JSONEachRow", ())
BUSY = 0.01  # async_insert_busy_timeout_ms of 10


class Inserts:
    """Records each insert's rows; an insert ends only when the test lets it."""

    def __init__(self) -> None:
        self.rows: list[bytes] = []
        self.running = asyncio.Event()
        self.release = asyncio.Event()

    async def run(self, rows: bytes) -> str:
        self.rows.append(rows)
        self.running.set()
        await self.release.wait()
        return "ok"


def lines(rows: bytes) -> list[bytes]:
    return [line for line in rows.split(b"\n") if line]


async def send(queue: AsyncInsertQueue, inserts: Inserts, body: bytes, leaders: list) -> asyncio.Future:
    batch, outcome, leader = queue.join(KEY, "JSONEachRow", body, 10 << 20)
    if leader:
        leaders.append(asyncio.ensure_future(queue.lead(batch, BUSY, inserts.run)))
    return outcome


def test_rows_that_arrive_while_the_previous_insert_runs_join_one_batch():
    async def scenario() -> tuple[list[bytes], int, list]:
        queue, inserts, leaders = AsyncInsertQueue(), Inserts(), []
        first = await send(queue, inserts, b'{"n":1}', leaders)
        await inserts.running.wait()  # the first batch is inserting, and takes long
        later = [await send(queue, inserts, b'{"n":2}', leaders)]
        await asyncio.sleep(BUSY * 5)  # the second batch's time is up; its turn has not come
        later += [await send(queue, inserts, b'{"n":%d}' % n, leaders) for n in (3, 4)]
        inserts.release.set()
        answers = await asyncio.gather(first, *later)
        await asyncio.gather(*leaders)
        return inserts.rows, len(leaders), answers

    rows, batches, answers = asyncio.run(scenario())
    assert [lines(r) for r in rows] == [[b'{"n":1}'], [b'{"n":2}', b'{"n":3}', b'{"n":4}']], rows
    assert batches == 2
    assert answers == ["ok"] * 4


def test_a_batch_without_a_previous_insert_goes_when_its_time_is_up():
    async def scenario() -> list[bytes]:
        queue, inserts, leaders = AsyncInsertQueue(), Inserts(), []
        inserts.release.set()
        first = await send(queue, inserts, b'{"n":1}', leaders)
        await first
        second = await send(queue, inserts, b'{"n":2}', leaders)
        await second
        await asyncio.gather(*leaders)
        return inserts.rows

    assert [lines(r) for r in asyncio.run(scenario())] == [[b'{"n":1}'], [b'{"n":2}']]
