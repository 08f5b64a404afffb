"""The events client's delivery against in-memory sinks: batching, drops, closing and failing sinks.

Without a consumer thread (background=False) the test drives delivery itself with pump(), flush()
and close(), and a FakeClock decides when a batch is old enough.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from pathlib import Path

import pytest

from events import (
    AnalyticsCompatEvent,
    Batching,
    Client,
    Event,
    FilterSink,
    InvalidEvent,
    LoggerSink,
    MemorySink,
)
from tests.events_support import BlockingSink, FakeClock, sync_client

# -- batching ------------------------------------------------------------------------------------


def test_a_batch_goes_out_when_it_reaches_the_event_count():
    client, sink = sync_client(Batching(max_events=3, interval=60.0))
    for n in range(7):
        client.record("behavioral", "click", n=n)

    client.pump()

    assert [[event.attributes["n"] for event in batch] for batch in sink.batches] == [[0, 1, 2], [3, 4, 5]]
    assert client.stats.pending == 1


def test_a_batch_goes_out_when_it_reaches_the_byte_limit():
    size = len(Event("behavioral", "click", {"n": 0}).json) + 1  # every event below has the same size
    client, sink = sync_client(Batching(max_events=1000, max_bytes=size * 2 + size // 2, interval=60.0))
    for n in range(5):
        client.record("behavioral", "click", n=n)

    client.pump()

    assert [len(batch) for batch in sink.batches] == [2, 2]
    assert all(sum(len(e.json) + 1 for e in batch) <= size * 2.5 for batch in sink.batches)


def test_a_batch_goes_out_when_its_first_event_is_old_enough():
    clock = FakeClock()
    client, sink = sync_client(Batching(max_events=1000, interval=5.0), clock=clock)
    client.record("behavioral", "first")
    clock.advance(2.0)
    client.record("behavioral", "second")

    clock.advance(2.5)
    client.pump()
    assert sink.batches == []  # the first event has waited 4.5 of 5 seconds

    clock.advance(0.5)
    client.pump()
    assert [[event.event_name for event in batch] for batch in sink.batches] == [["first", "second"]]


def test_flush_sends_a_batch_that_is_not_due_yet():
    client, sink = sync_client(Batching(max_events=1000, interval=3600.0))
    client.record("behavioral", "click")
    client.pump()
    assert sink.batches == []

    assert client.flush() is True
    assert len(sink.events) == 1


# -- never blocking: the drop policy ---------------------------------------------------------------


def test_a_full_queue_drops_the_newest_events_and_counts_them(caplog):
    client, sink = sync_client(queue_size=3)

    results = [client.record("behavioral", "click", n=n) for n in range(5)]

    assert [result is None for result in results] == [False, False, False, True, True]
    assert (client.stats.accepted, client.stats.dropped) == (3, 2)
    assert "dropped an event because the queue is full" in caplog.text
    client.flush()
    assert [event.attributes["n"] for event in sink.events] == [0, 1, 2]


def test_recording_does_not_wait_for_a_stuck_sink():
    sink = BlockingSink(Batching(max_events=1, interval=0.0))
    client = Client(sink, queue_size=5)
    client.record("behavioral", "first")
    assert sink.entered.wait(10)  # the consumer is now stuck inside emit

    for _ in range(100):  # would hang here if recording blocked on the full queue
        client.record("behavioral", "more")

    assert (client.stats.accepted, client.stats.dropped) == (6, 95)
    sink.release.set()
    assert client.close() is True
    assert len(sink.events) == 6


def test_events_recorded_after_close_are_dropped_and_counted():
    client, sink = sync_client()
    client.close()

    assert client.record("behavioral", "late") is None
    assert client.stats.dropped == 1
    assert sink.events == []


def test_the_first_drop_of_each_reason_is_logged_a_full_queue_then_a_closed_client(caplog):
    """A record() after close() went unlogged once the queue had been full: the drops of both were
    counted together and only the first and every thousandth were logged."""
    client, _ = sync_client(queue_size=1)
    for n in range(3):
        client.record("behavioral", "click", n=n)
    client.close()

    assert client.record("behavioral", "late") is None
    assert client.record("behavioral", "later") is None

    dropped = [record.getMessage() for record in caplog.records if record.getMessage().startswith("dropped")]
    assert dropped == [
        "dropped an event because the queue is full (1 events); 1 dropped so far",
        "dropped an event because the client is closed; 3 dropped so far",
    ]


# -- closing -------------------------------------------------------------------------------------


def test_close_hands_everything_to_the_sink_and_closes_it_once():
    client, sink = sync_client(Batching(max_events=1000, interval=3600.0))
    client.record("behavioral", "a")
    client.record("behavioral", "b")

    assert client.close() is True
    assert client.close() is True

    assert [event.event_name for event in sink.events] == ["a", "b"]
    assert sink.close_calls == 1


def test_leaving_a_with_block_closes_the_client():
    sink = MemorySink(Batching(interval=3600.0))
    with Client(sink, background=False) as client:
        client.record("behavioral", "a")
    assert len(sink.events) == 1 and sink.closed


def test_the_consumer_thread_delivers_everything_in_order_by_close():
    sink = MemorySink(Batching(max_events=64, interval=3600.0))
    client = Client(sink, queue_size=10_000)
    for n in range(2000):
        client.record("behavioral", "click", n=n)

    assert client.close() is True

    assert [event.attributes["n"] for event in sink.events] == list(range(2000))
    assert client.stats.emitted == 2000 and sink.closed


def test_flush_waits_for_the_consumer_thread():
    sink = MemorySink(Batching(max_events=1000, interval=3600.0))
    client = Client(sink)
    for _ in range(5):
        client.record("behavioral", "click")

    assert client.flush(timeout=30) is True
    assert len(sink.events) == 5
    client.close()


def test_close_gives_up_after_its_timeout_and_counts_what_was_left():
    sink = BlockingSink(Batching(max_events=1, interval=0.0))
    client = Client(sink)
    for _ in range(3):
        client.record("behavioral", "click")
    assert sink.entered.wait(10)

    assert client.close(timeout=0.2) is False

    assert client.stats.abandoned == 2  # two still queued; the one stuck in emit is the sink's
    assert sink.closed
    sink.release.set()
    deadline = time.monotonic() + 10
    while client.stats.emitted != 1:  # the stuck one ends; the two abandoned never reach the sink
        assert time.monotonic() < deadline, client.stats
        time.sleep(0.01)
    assert client.stats.emitted + client.stats.abandoned == client.stats.accepted


# -- a failing sink and the small sinks ------------------------------------------------------------


class FlakySink(MemorySink):
    def __init__(self):
        super().__init__(Batching(max_events=2, interval=60.0))
        self.calls = 0

    def emit(self, batch):
        self.calls += 1
        if self.calls == 1:
            raise ConnectionError("sink down")
        super().emit(batch)


def test_a_sink_that_raises_costs_only_that_batch_and_is_counted(caplog):
    sink = FlakySink()
    client = Client(sink, background=False)
    for n in range(4):
        client.record("behavioral", "click", n=n)

    client.pump()

    assert [event.attributes["n"] for event in sink.events] == [2, 3]
    assert (client.stats.failed, client.stats.emitted) == (2, 2)
    assert "the sink raised on a batch of 2 events" in caplog.text


def test_filter_sink_passes_on_only_what_the_predicate_accepts_and_closes_the_sink():
    inner = MemorySink(Batching(max_events=10, interval=7.0))
    sink = FilterSink(inner, lambda event: event.event_type != "metric")
    client = Client(sink, background=False)
    client.record("behavioral", "kept")
    client.record_metric("dropped", 1.0)

    client.close()

    assert [event.event_name for event in inner.events] == ["kept"]
    assert sink.batching == inner.batching and inner.closed


class Reported:
    """An on_error callback that remembers what it was given."""

    def __init__(self):
        self.calls = []

    def __call__(self, events, error):
        self.calls.append((events, error))


def no_region_on_odd(event):
    if event.attributes["n"] % 2:
        raise KeyError("region")
    return True


def test_a_filter_predicate_that_raises_costs_only_its_event_which_is_reported(caplog):
    inner = MemorySink(Batching(max_events=10, interval=7.0))
    reported = Reported()
    sink = FilterSink(inner, no_region_on_odd, on_error=reported)
    client = Client(sink, background=False)
    recorded = [client.record("behavioral", "click", n=n) for n in range(3)]

    client.close()

    assert [event.attributes["n"] for event in inner.events] == [0, 2]
    ((events, error),) = reported.calls
    assert events == [recorded[1]] and "KeyError" in str(error) and "region" in str(error)
    assert sink.stats.failed == 1 and client.stats.emitted == 3 and client.stats.failed == 0
    assert "FilterSink could not deliver 1 events: the predicate raised KeyError: 'region'" in caplog.text


def test_without_a_callback_events_whose_predicate_raised_are_kept():
    inner = MemorySink(Batching(max_events=10, interval=7.0))
    sink = FilterSink(inner, no_region_on_odd)
    client = Client(sink, background=False)
    recorded = [client.record("behavioral", "click", n=n) for n in range(4)]

    client.close()

    assert [event.attributes["n"] for event in inner.events] == [0, 2]
    assert sink.take_undelivered() == [recorded[1], recorded[3]] and sink.take_undelivered() == []


def test_failures_of_one_reason_are_logged_at_the_first_each_thousandth_and_after_a_quiet_minute(caplog):
    def refuse(event):
        raise KeyError("region")

    sink = FilterSink(MemorySink(Batching(max_events=1, interval=0.0)), refuse)
    clock = FakeClock()
    sink._failures.clock = clock
    client = Client(sink, background=False)

    def lines_after(count: int) -> list[str]:
        caplog.clear()
        for n in range(count):
            client.record("behavioral", "click", n=n)
        client.flush()
        return [record.getMessage() for record in caplog.records if record.name == "events.sinks"]

    reason = "the predicate raised KeyError: 'region'"
    assert lines_after(1500) == [
        f"FilterSink could not deliver 1 events: {reason}",
        f"FilterSink could not deliver 1000 events so far: {reason}",
    ]
    clock.advance(59.0)
    assert lines_after(10) == []
    clock.advance(1.0)  # a minute since the last line: the next failure is logged, then quiet again
    assert lines_after(10) == [f"FilterSink could not deliver 1511 events so far: {reason}"]
    assert sink.stats.failed == 1520 and len(sink.take_undelivered()) == 1520


def test_logger_sink_logs_each_event_as_json(caplog):
    caplog.set_level(logging.INFO, logger="events")
    client = Client(LoggerSink(), background=False)
    event = client.record("behavioral", "click", user_id="u-1")

    client.close()

    assert event.json.decode() in caplog.text


REPO = Path(__file__).resolve().parent.parent
LOGGER_SINK_PROGRAM = """
import logging
{configure}
from events import Client, LoggerSink
with Client(LoggerSink()) as client:
    client.record("behavioral", "first")
    client.record("behavioral", "second")
"""


def logger_sink_program(configure: str) -> subprocess.CompletedProcess:
    """LoggerSink in a program of its own, with logging set up by `configure` (its stderr is what shows)."""
    run = subprocess.run(
        [sys.executable, "-c", LOGGER_SINK_PROGRAM.format(configure=configure)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert run.returncode == 0, run.stderr
    return run


@pytest.mark.parametrize(
    "configure",
    ["", "logging.getLogger('events').setLevel(logging.INFO)", "logging.basicConfig()"],
    ids=["logging unconfigured", "a level but no handler", "warnings only"],
)
def test_a_logger_sink_whose_logger_shows_nothing_says_so_once(configure):
    """Python's logging unconfigured shows only warnings: LoggerSink() printed nothing at all."""
    run = logger_sink_program(configure)

    assert run.stderr.count("LoggerSink: logger 'events' shows no INFO records") == 1, run.stderr
    assert "logging.basicConfig(level=logging.INFO)" in run.stderr


def test_a_logger_sink_whose_logger_shows_its_events_warns_of_nothing():
    run = logger_sink_program("logging.basicConfig(level=logging.INFO)")

    assert '"event_name":"first"' in run.stderr and '"event_name":"second"' in run.stderr
    assert "shows no" not in run.stderr


def test_events_made_elsewhere_can_be_sent_and_are_validated():
    client, sink = sync_client()
    good = Event("job_log", "created", {"user_id": "u", "workflow_id": "w", "job_id": "j", "count": 2})
    bad = AnalyticsCompatEvent("WORKFLOWS", "u", "w", {})

    assert client.send(good) is good
    with pytest.raises(InvalidEvent, match="Data.kind"):
        client.send(bad)
    # An event's JSON form is no event: told where it goes, not an AttributeError from inside
    with pytest.raises(TypeError, match=r"not dict; an event in its JSON form \(a dict\) is sent with record_raw"):
        client.send(good.to_dict())
    client.flush()
    assert sink.events == [good]
