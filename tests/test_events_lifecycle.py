"""The client's life: a fork, close() and flush() from a sink's callback or twice at once, a close()
that runs out of time, and the undelivered events a sink keeps while its back end is down.

ClickHouseSink against the real embedded ClickHouse where a back end is needed; a sink of the
test's own (a pure unit) where the point is the client's bookkeeping.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from events import ClickHouseSink, Client, Event
from events.sinks import Batching, DeliveryError, FailedEvents, FilterSink, MemorySink, NoopSink
from tests.test_events_clickhouse import create_landing_tables, job, rows


def test_a_forked_child_delivers_what_it_records_and_not_what_its_parent_had_queued(clickhouse, ch):
    """A client made before a fork (gunicorn --preload, multiprocessing): the child's events were
    accepted into a queue no thread read, and close() said True."""
    create_landing_tables(ch)
    sink = ClickHouseSink(clickhouse.url, ch.database, interval=0.05)
    client = Client(sink)
    client.send(job("parent-1"))
    assert client.flush(30)
    client.send(job("parent-queued"))  # queued in the parent when it forks
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through its exit status
        ok = False
        try:
            for n in range(3):
                client.send(job(f"child-{n}"))
            ok = client.close(30) and client.stats.emitted == 3 and sink.stats.delivered == 3
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(child, 0)
    assert client.close(30)
    assert os.waitstatus_to_exitcode(status) == 0, "the child's client did not deliver its events"
    ids = sorted(row["job_id"] for row in rows(ch, "jobs"))
    assert ids == ["child-0", "child-1", "child-2", "parent-1", "parent-queued"]


class Slow(MemorySink):
    """Takes ``seconds`` to emit a batch (once ``ready``), and calls ``callback`` (as a sink's
    on_error would) from it."""

    def __init__(self, seconds: float = 0.0, callback=None):
        super().__init__(Batching(max_events=1, interval=0.0))
        self.seconds, self.callback = seconds, callback
        self.ready = threading.Event()
        self.ready.set()

    def emit(self, batch) -> None:
        assert self.ready.wait(30)
        time.sleep(self.seconds)
        super().emit(batch)
        if self.callback is not None:
            self.callback()


def event(n: int) -> Event:
    return Event("behavioral", "click", {"user_id": f"u-{n}"})


def test_close_and_flush_from_a_callback_on_the_consumer_thread_deliver_and_close():
    """close() joined its own thread (RuntimeError), flush() waited for a marker only its own
    thread could reach; the sink was never closed."""
    outcomes: list = []
    client: Client | None = None

    called: list[bool] = []

    def from_the_callback() -> None:
        if not called:  # the first batch's; the flush below emits the others from inside it
            called.append(True)
            outcomes.append(("flush", client.flush(5)))
            outcomes.append(("close", client.close(5)))

    sink = Slow(callback=from_the_callback)
    sink.ready.clear()  # the first batch waits until all three are recorded
    client = Client(sink)
    for n in range(3):
        client.send(event(n))
    sink.ready.set()
    deadline = time.monotonic() + 30
    while len(outcomes) < 2:
        assert time.monotonic() < deadline, outcomes
        time.sleep(0.01)
    assert outcomes == [("flush", True), ("close", True)]
    assert sink.closed and len(sink.events) == 3
    assert client.close(5)  # and a close() after it says the same


def test_a_close_that_runs_out_of_time_hands_nothing_more_to_the_sink():
    """Events counted as abandoned were still emitted afterwards, into the closed sink."""
    sink = Slow(seconds=0.5)
    client = Client(sink, queue_size=10)
    for n in range(4):
        client.send(event(n))
    assert not client.close(0.2)
    abandoned = client.stats.abandoned
    time.sleep(1.5)  # the batch under way ends; nothing after it may follow
    stats = client.stats
    assert abandoned >= 3 and stats.emitted + abandoned <= stats.accepted, stats
    assert len(sink.events) == stats.emitted


def test_a_second_close_at_once_waits_for_the_first_and_says_the_same():
    sink = Slow(seconds=0.3)
    client = Client(sink)
    for n in range(3):
        client.send(event(n))
    answers: list[bool] = []
    first = threading.Thread(target=lambda: answers.append(client.close(30)))
    first.start()
    while not client._pipeline.closed:
        time.sleep(0.001)
    second = client.close(30)  # said True at once, before anything was delivered
    assert len(sink.events) == 3 and sink.closed
    first.join(30)
    assert answers == [True] and second is True


def test_a_flush_during_close_waits_for_it_and_says_whether_all_went():
    sink = Slow(seconds=0.3)
    client = Client(sink)
    for n in range(3):
        client.send(event(n))
    closing = threading.Thread(target=client.close, args=(30,))
    closing.start()
    while not client._pipeline.closed:
        time.sleep(0.001)
    assert client.flush(30)  # waited its whole timeout and said False, though all went
    closing.join(30)
    assert len(sink.events) == 3


def test_a_sink_whose_back_end_is_down_keeps_the_newest_undelivered_events_and_counts_the_rest(refused_port):
    sink = ClickHouseSink(f"http://127.0.0.1:{refused_port}", max_retries=0, max_undelivered=5, interval=0.0)
    client = Client(sink, background=False)
    for n in range(12):
        client.send(job(f"j-{n}"))
    client.close(30)
    kept = sink.take_undelivered()
    assert [e.attributes["job_id"] for e in kept] == [f"j-{n}" for n in range(7, 12)]
    assert (sink.stats.failed, sink.stats.discarded) == (12, 7)


def test_a_negative_limit_of_undelivered_events_is_refused_by_name():
    with pytest.raises(ValueError, match="max_undelivered must not be negative"):
        ClickHouseSink("http://127.0.0.1:8123", max_undelivered=-1)


def test_without_a_thread_a_flush_that_outlasts_its_timeout_says_so(refused_port):
    """flush(timeout) runs the sink's retries in the caller: past the timeout it said True all the same."""
    sink = ClickHouseSink(f"http://127.0.0.1:{refused_port}", max_retries=3, backoff=0.2, max_backoff=0.2)
    client = Client(sink, background=False)
    client.send(job("late"))
    assert client.flush(0.05) is False
    assert client.close(30)


def test_a_fork_while_other_threads_record_leaves_the_child_a_client_that_records():
    """A fork taken while another thread held the client's lock (or its queue's) left the child
    that lock held for good: its first record() hung (about one fork in fifty, measured)."""
    client = Client(NoopSink(), queue_size=1_000_000)
    stop = threading.Event()

    def record_without_pause() -> None:
        while not stop.is_set():
            client.record("app", "tick")

    threads = [threading.Thread(target=record_without_pause, daemon=True) for _ in range(3)]
    for thread in threads:
        thread.start()
    hung, outcomes = 0, []
    try:
        for _ in range(150):
            child = os.fork()
            if child == 0:  # pragma: no cover - the child reports through its exit status
                signal.signal(signal.SIGALRM, signal.SIG_DFL)  # not pytest-timeout's handler
                signal.alarm(5)  # a record() that blocks for good ends the child by SIGALRM
                client.record("app", "in-child")
                os._exit(0 if client.close(5) else 1)
            _, status = os.waitpid(child, 0)
            hung += os.waitstatus_to_exitcode(status) != 0
            outcomes.append(os.waitstatus_to_exitcode(status))
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
        client.close(10)
    assert hung == 0, f"{hung} of 150 forked children could not record: {sorted(set(outcomes))}"


def test_a_close_that_runs_out_of_time_with_a_batch_still_in_the_sink_says_so(silent_port):
    """A server that takes the request and never answers: close() said True, with the batch under
    way neither delivered nor reported, lost with the process."""
    sink = ClickHouseSink(f"http://127.0.0.1:{silent_port}", interval=0.0, timeout=30, max_retries=0)
    client = Client(sink)
    client.send(job("stuck"))
    deadline = time.monotonic() + 30
    while client._pipeline.in_sink == 0:  # the batch is with the sink, its request under way
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert client.close(0.5) is False
    assert client.close(0.5) is False  # a second close says the same
    stats = client.stats
    assert (stats.abandoned, stats.pending, stats.emitted) == (0, 1, 0), stats


class BrokenBatching:
    """Batching whose interval the consumer thread cannot wait on (Batching refuses it)."""

    max_events, max_bytes, interval = 100, 1 << 20, float("inf")


def test_a_consumer_thread_that_fails_leaves_close_saying_what_was_abandoned(caplog):
    """The thread died (OverflowError from an infinite wait) and close() said True, the events queued."""
    sink = MemorySink()
    sink.batching = BrokenBatching()
    client = Client(sink)
    assert client.send(event(0)) is not None  # the thread fails as it waits for the batch to be due
    deadline = time.monotonic() + 30
    while client._pipeline.thread.is_alive():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert "the events consumer thread failed" in caplog.text
    assert client.send(event(1)) is None  # refused at once, not queued for nobody
    assert "the client's consumer thread failed" in caplog.text
    assert client.close(1) is False
    assert (client.stats.abandoned, client.stats.dropped, sink.events) == (1, 1, []), client.stats


@pytest.mark.parametrize("interval", [float("inf"), float("nan"), -1.0])
def test_a_batching_interval_that_is_not_a_finite_number_of_seconds_is_refused(interval):
    with pytest.raises(ValueError, match="interval must be a number of seconds, 0 or more and finite"):
        Batching(interval=interval)


class FileSink:
    """Appends each event's id to a file: what a child process delivered, for its parent to read."""

    batching = Batching(max_events=1000, interval=30.0)  # nothing goes out before the child ends

    def __init__(self, path):
        self.path = path

    def emit(self, batch) -> None:
        with open(self.path, "a") as out:
            out.writelines(f"{event.event_id}\n" for event in batch)

    def close(self) -> None:
        pass


def _record_and_return(client: Client, count: int) -> None:
    for n in range(count):
        client.send(event(n))  # and no close(): the process ends with them queued


def _new_client_record_and_return(path, count: int) -> None:
    _record_and_return(Client(FileSink(path)), count)


@pytest.mark.parametrize("made", ["before the fork", "in the child"])
def test_a_multiprocessing_child_that_ends_without_close_delivers_what_it_queued(tmp_path, made):
    """multiprocessing's children end with os._exit, where atexit's close does not run: their
    queued events were lost, without a word."""
    import multiprocessing

    path = tmp_path / "delivered"
    context = multiprocessing.get_context("fork")
    if made == "before the fork":
        client = Client(FileSink(path))
        child = context.Process(target=_record_and_return, args=(client, 5))
    else:
        child = context.Process(target=_new_client_record_and_return, args=(path, 5))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    assert len(path.read_text().splitlines()) == 5
    if made == "before the fork":
        assert client.close(5) and not path.read_text().count("\n") > 5  # the parent had queued nothing


def test_undelivered_events_are_kept_up_to_a_number_of_bytes_too():
    """Kept by count only: 100,000 undelivered events of 4 KiB held about 900 MiB."""
    failures = FailedEvents(None, "a sink", max_kept=100, max_bytes=35_000)
    events = [Event("behavioral", "upload", {"user_id": f"u-{n}", "blob": "x" * 10_000}) for n in range(8)]
    for batch in (events[:5], events[5:]):
        failures.report(batch, DeliveryError("down", retryable=True))
    assert [e.attributes["user_id"] for e in failures.take()] == ["u-5", "u-6", "u-7"]
    assert failures.discarded == 5
    failures.report(events[:1], DeliveryError("down", retryable=True))  # the bytes taken are free again
    assert len(failures.take()) == 1 and failures.discarded == 5


@pytest.mark.parametrize("timeout", [-1.0, float("nan"), "10", True], ids=["negative", "nan", "text", "bool"])
def test_a_flush_or_close_given_a_timeout_that_is_no_number_of_seconds_is_refused_and_the_client_stays_open(timeout):
    """close(-1) raised from inside the close: the client was closed, its events still queued and its
    sink open, and the next close() said True; close(nan) abandoned every event at once."""
    sink = MemorySink(Batching(max_events=100, interval=30.0))
    client = Client(sink)
    client.send(event(0))
    for method in (client.flush, client.close):
        with pytest.raises(ValueError, match=f"timeout must be a number of seconds, 0 or more.*got {timeout!r}"):
            method(timeout)
    assert client.send(event(1)) is not None  # still open
    assert client.close(30)
    assert [e.attributes["user_id"] for e in sink.events] == ["u-0", "u-1"] and sink.closed


@pytest.mark.parametrize("timeout", [None, float("inf")])
def test_flush_and_close_without_a_bound_wait_as_long_as_it_takes(timeout):
    sink = Slow(seconds=0.05)
    client = Client(sink)
    for n in range(3):
        client.send(event(n))
    assert client.flush(timeout)
    assert len(sink.events) == 3
    client.send(event(3))
    assert client.close(timeout)
    assert len(sink.events) == 4 and sink.closed


@pytest.mark.parametrize("queue_size", [1.5, True, 0])
def test_a_queue_size_that_is_no_whole_number_of_events_is_refused_by_name(queue_size):
    with pytest.raises(ValueError, match=f"queue_size must be a whole number, at least 1, got {queue_size!r}"):
        Client(NoopSink(), queue_size=queue_size)


def test_behind_a_filter_sink_the_events_the_wrapped_sink_gave_up_on_are_counted_and_kept(refused_port):
    """FilterSink's stats and take_undelivered() were its predicate's alone: with its back end down,
    the filter said nothing failed and kept nothing, and the wrapped sink, made in the same line,
    held every event where the caller could not reach it."""

    def odd_raises(event):
        if int(event.attributes["job_id"][2:]) % 2:
            raise KeyError("region")
        return True

    sink = FilterSink(ClickHouseSink(f"http://127.0.0.1:{refused_port}", max_retries=0, interval=0.0), odd_raises)
    client = Client(sink, background=False)
    recorded = [client.send(job(f"j-{n}")) for n in range(6)]
    client.close(30)

    assert (sink.stats.failed, sink.stats.delivered) == (6, 0)
    kept = sink.take_undelivered()
    assert sorted(e.event_id for e in kept) == sorted(e.event_id for e in recorded)
    assert sink.take_undelivered() == []
