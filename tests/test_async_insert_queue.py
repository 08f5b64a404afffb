"""The asynchronous insert queue's batching, as a pure unit: the inserts are a stand-in that records them.

What goes through the real server (exactly once, bad batches refused alone, settings) is in
test_async_inserts.py; here, which bodies end up in which insert.
"""

from __future__ import annotations

import asyncio
import errno

from core.errors import Code
from embedded.async_inserts import AsyncInsertQueue
from embedded.errors import ClickHouseError

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


def test_a_failure_other_than_clickhouses_while_retrying_body_by_body_answers_every_sender():
    """The combined insert is refused, and inserting a body on its own fails otherwise (the disk
    full when its rows are written to a file): every sender gets that error, none waits for ever."""

    async def run(rows: bytes) -> str:
        if rows.count(b"\n") > 1:
            raise ClickHouseError.of(Code.NOT_ENOUGH_SPACE, "Cannot reserve space")
        raise OSError(errno.ENOSPC, "No space left on device")

    async def scenario() -> list[BaseException | None]:
        queue = AsyncInsertQueue()
        outcomes = []
        for n in range(3):
            batch, outcome, leader = queue.join(KEY, "JSONEachRow", b'{"n": %d}' % n, 10 << 20)
            outcomes.append(outcome)
            if leader:
                leading = asyncio.ensure_future(queue.lead(batch, BUSY, run))
        await asyncio.gather(leading, return_exceptions=True)
        return [outcome.exception() if outcome.done() else None for outcome in outcomes]

    errors = asyncio.run(scenario())
    assert [type(error) for error in errors] == [OSError] * 3, errors


def test_draining_inserts_every_open_batch_without_waiting_out_its_timeout():
    async def scenario() -> list[bytes]:
        queue, inserts = AsyncInsertQueue(), Inserts()
        inserts.release.set()
        outcomes = []
        for n in range(3):
            batch, outcome, leader = queue.join(KEY, "JSONEachRow", b'{"n": %d}' % n, 10 << 20)
            outcomes.append(outcome)
            if leader:
                queue.track(asyncio.ensure_future(queue.lead(batch, 3600, inserts.run)))
        await asyncio.wait_for(queue.drain(), 60)  # not the batch's hour
        assert [outcome.result() for outcome in outcomes] == ["ok"] * 3
        return inserts.rows

    rows = asyncio.run(scenario())
    assert [lines(r) for r in rows] == [[b'{"n": 0}', b'{"n": 1}', b'{"n": 2}']]
