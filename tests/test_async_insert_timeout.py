"""The asynchronous insert queue's adaptive busy timeout, as a pure unit with a fake clock.

ClickHouse (since 24.2, `async_insert_use_adaptive_busy_timeout=1` by default) starts a key's
batches at `async_insert_busy_timeout_min_ms`, stretches the timeout while inserts follow each
other closely, shrinks it when they are sparse, and inserts at once an insert that comes after a
quiet spell. embedded/async_inserts.py follows its steps; these pin them.
"""

from __future__ import annotations

import asyncio

import pytest

from core.errors import Code
from embedded.async_inserts import AsyncInsertQueue, BusyTimeout, Pace, busy_timeout, check_settings
from embedded.errors import ClickHouseError

DEFAULT = BusyTimeout()  # 50 to 200 ms, rates 0.2


def test_a_first_batch_waits_the_minimum():
    assert busy_timeout(Pace(), DEFAULT, now=100.0) == (0.05, False)


def test_inserts_in_quick_succession_stretch_the_timeout_up_to_the_maximum():
    pace, now, seen = Pace(), 100.0, []
    pace.flushes = (90.0, 95.0)  # two inserts of the key before
    for _ in range(12):
        timeout, at_once = busy_timeout(pace, DEFAULT, now)
        seen.append(round(timeout * 1000))
        assert not at_once
        now += 0.01  # 10 ms apart: within the minimum
    assert seen == [50, 60, 72, 86, 103, 123, 147, 176, 200, 200, 200, 200]


def test_sparse_inserts_shrink_it_back_to_the_minimum():
    pace = Pace(timeout_ms=200, last_push=100.0, flushes=(99.0, 99.5))
    now, seen = 100.18, []
    for _ in range(8):
        timeout, _ = busy_timeout(pace, DEFAULT, now)
        seen.append(round(timeout * 1000))
        pace.flushes = (pace.flushes[1], now)  # each insert of its own, well apart
        now += 0.18  # longer than the shrunk timeouts, shorter than the maximum
    assert seen == [166, 138, 115, 95, 79, 65, 54, 50]


def test_an_insert_after_a_quiet_spell_goes_in_at_once():
    pace = Pace(timeout_ms=50, last_push=100.0, flushes=(99.0, 100.05))
    assert busy_timeout(pace, DEFAULT, now=101.0) == (0.05, True)
    # Not while the last two inserts came close together, nor right after another insert.
    assert busy_timeout(Pace(timeout_ms=50, last_push=100.0, flushes=(100.0, 100.1)), DEFAULT, 101.0)[1] is False
    assert busy_timeout(Pace(timeout_ms=50, last_push=100.95, flushes=(99.0, 100.05)), DEFAULT, 101.0)[1] is False


def test_without_the_adaptive_timeout_every_batch_waits_the_maximum():
    fixed = BusyTimeout.of({"async_insert_use_adaptive_busy_timeout": "0", "async_insert_busy_timeout_ms": "300"})
    pace = Pace(timeout_ms=50, last_push=100.0, flushes=(99.0, 100.05))
    assert busy_timeout(pace, fixed, now=101.0) == (0.3, False)


def test_the_settings_and_their_alias():
    assert BusyTimeout.of({}) == DEFAULT
    assert BusyTimeout.of({"async_insert_busy_timeout_ms": "300"}).max_ms == 300
    both = {"async_insert_busy_timeout_ms": "300", "async_insert_busy_timeout_max_ms": "400"}
    assert BusyTimeout.of(both).max_ms == 400
    # A minimum above the maximum gives way to it, as in ClickHouse.
    low = BusyTimeout.of({"async_insert_busy_timeout_min_ms": "500", "async_insert_busy_timeout_max_ms": "100"})
    assert busy_timeout(Pace(), low, now=1.0) == (0.1, False)


@pytest.mark.parametrize(
    ("settings", "code", "words"),
    [
        ({"async_insert_busy_timeout_increase_rate": "0"}, Code.INVALID_SETTING_VALUE, "must be greater than zero"),
        ({"async_insert_busy_timeout_decrease_rate": "-1"}, Code.INVALID_SETTING_VALUE, "must be greater than zero"),
        ({"async_insert_busy_timeout_increase_rate": "abc"}, Code.CANNOT_PARSE_NUMBER, "floating point"),
        ({"async_insert_busy_timeout_ms": "0"}, Code.INVALID_SETTING_VALUE, "can't be zero"),
        ({"async_insert_busy_timeout_min_ms": "-1"}, Code.CANNOT_PARSE_NUMBER, "'-'"),
        ({"async_insert_use_adaptive_busy_timeout": "maybe"}, Code.CANNOT_PARSE_BOOL, "maybe"),
    ],
)
def test_a_timeout_setting_clickhouse_refuses_is_refused_by_name(settings, code, words):
    with pytest.raises(ClickHouseError) as refused:
        check_settings(settings)
    assert refused.value.code == code and words in str(refused.value), refused.value
    [name] = settings
    assert name.replace("async_insert_busy_timeout_ms", "async_insert_busy_timeout_max_ms") in str(refused.value)


def test_the_queue_keeps_one_pace_a_key_and_forgets_the_quietest_when_full(monkeypatch):
    monkeypatch.setattr("embedded.async_inserts.MAX_PACES", 4)
    queue = AsyncInsertQueue()
    for n in range(4):
        queue.busy_timeout(("key", n), {}, now=float(n))
    queue.busy_timeout(("key", 9), {}, now=10.0)
    assert sorted(queue.paces) == [("key", 2), ("key", 3), ("key", 9)]


def test_an_insert_at_once_ends_its_batch_wait():
    """A batch waiting out a long timeout goes as soon as an insert that comes at once joins it."""

    async def scenario() -> list[bytes]:
        queue, rows = AsyncInsertQueue(), []

        async def run(body: bytes) -> str:
            rows.append(body)
            return "ok"

        key = ("default", "db", b"INSERT INTO t FORMAT JSONEachRow", ())
        batch, first, leader = queue.join(key, "JSONEachRow", b'{"n":1}', 10 << 20)
        assert leader
        leading = asyncio.ensure_future(queue.lead(batch, 30.0, run))
        _, second, leader = queue.join(key, "JSONEachRow", b'{"n":2}', 10 << 20, at_once=True)
        assert not leader
        await asyncio.wait_for(asyncio.gather(first, second, leading), 10.0)  # not the batch's 30 s
        return rows

    [rows] = asyncio.run(scenario())  # one insert of both
    assert [line for line in rows.split(b"\n") if line] == [b'{"n":1}', b'{"n":2}']
