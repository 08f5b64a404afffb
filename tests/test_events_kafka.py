"""KafkaSink: routing, keys, ordering and nothing lost on close.

Tests marked `kafka` need a real broker from the `kafka` fixture (`.bootstrap` = "127.0.0.1:PORT").
The others need none: a bootstrap address where nothing listens is enough to check that events
which cannot be delivered are reported, not lost.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid

import pytest

from events import AnalyticsCompatEvent, Client, Event, KafkaSink
from events.sinks import FilterSink


class Reported:
    def __init__(self):
        self.calls = []

    def __call__(self, events, error):
        self.calls.append((events, error))

    @property
    def events(self):
        return [event for events, _ in self.calls for event in events]


def one_of_each(workflow_id: str = "w-1") -> list:
    return [
        Event("workflow", "created", {"user_id": "u-1", "workflow_id": workflow_id, "kind": "HEARTBEAT"}),
        Event(
            "job",
            "created",
            {"user_id": "u-1", "workflow_id": workflow_id, "job_id": "j-1", "status": "pending"},
        ),
        Event("job_log", "created", {"user_id": "u-1", "workflow_id": workflow_id, "job_id": "j-1", "count": 3}),
        Event("behavioral", "login-start", {"user_id": "u-1"}),
        Event("metric", "queue_depth", {"value": 2.0}),
        AnalyticsCompatEvent("LOGS", "u-1", workflow_id, {"count": 3}),
    ]


# -- without a broker --------------------------------------------------------------------------------


def test_topics_follow_the_event_type_after_the_prefix(refused_port):
    sink = KafkaSink(f"127.0.0.1:{refused_port}", topic_prefix="staging.")
    try:
        assert [sink.topic_for(event) for event in one_of_each()] == [
            "staging.workflows",
            "staging.jobs",
            "staging.job_logs",
            "staging.telemetry",
            "staging.telemetry",
            "staging.analytics",
        ]
    finally:
        sink.close()


def test_events_that_cannot_be_delivered_by_close_are_reported_not_lost(refused_port):
    reported = Reported()
    sink = KafkaSink(f"127.0.0.1:{refused_port}", flush_timeout=0.5, on_error=reported)
    client = Client(sink)
    recorded = [client.send(event) for event in one_of_each()]

    client.close()

    assert sorted(e.event_id for e in reported.events) == sorted(e.event_id for e in recorded)
    assert sink.stats.failed == len(recorded) and sink.stats.delivered == 0
    assert all(error.code is not None for _, error in reported.calls)  # librdkafka's reason travels along


def test_a_broker_out_of_reach_logs_the_first_failure_and_every_thousandth_not_each_event(refused_port, caplog):
    """KafkaSink reports each event on its own: a close that purged 2,500 events logged 2,500 errors."""
    sink = KafkaSink(f"127.0.0.1:{refused_port}", flush_timeout=0.2)
    client = Client(sink, queue_size=5000)
    for n in range(2500):
        client.record("behavioral", "page-view", n=n)

    with caplog.at_level(logging.ERROR, logger="events.sinks"):
        client.close()

    assert sink.stats.failed == 2500 and len(sink.take_undelivered()) == 2500  # each still reported
    assert [record.getMessage() for record in caplog.records if record.name == "events.sinks"] == [
        "KafkaSink could not deliver 1 events: Local: Purged in queue (topic telemetry)",
        "KafkaSink could not deliver 1000 events so far: Local: Purged in queue (topic telemetry)",
        "KafkaSink could not deliver 2000 events so far: Local: Purged in queue (topic telemetry)",
    ]


def test_without_a_callback_undelivered_events_are_kept(refused_port):
    sink = KafkaSink(f"127.0.0.1:{refused_port}", flush_timeout=0.2)
    events = one_of_each()

    sink.emit(events)
    sink.close()
    sink.close()  # closing again does nothing

    assert sorted(e.event_id for e in sink.take_undelivered()) == sorted(e.event_id for e in events)


@pytest.mark.parametrize("flush_timeout", [float("nan"), -1.0, "10"])
def test_a_flush_timeout_that_is_no_number_of_seconds_is_refused_by_name(refused_port, flush_timeout):
    """NaN, or a negative number, which librdkafka reads as no bound, made close() wait the producer's
    message timeout, five minutes, where the sink promises its flush_timeout."""
    with pytest.raises(
        ValueError, match=f"flush_timeout must be a number of seconds, 0 or more, got {flush_timeout!r}"
    ):
        KafkaSink(f"127.0.0.1:{refused_port}", flush_timeout=flush_timeout)


@pytest.mark.parametrize("bootstrap", ["", "  ", None])
def test_a_sink_with_no_broker_to_reach_is_refused_by_name(bootstrap):
    """KafkaSink("") was made (librdkafka only warns), and every event it was given failed."""
    with pytest.raises(ValueError, match=f"bootstrap_servers must name brokers, HOST:PORT.*, got {bootstrap!r}"):
        KafkaSink(bootstrap)
    with pytest.raises(ValueError, match="bootstrap_servers must name brokers"):
        KafkaSink("127.0.0.1:9092", config={"bootstrap.servers": ""})


@pytest.mark.parametrize("prefix", ["staging/", "prod:", "ünï.", "p" * 241])
def test_a_topic_prefix_kafka_cannot_name_a_topic_with_is_refused_by_name(refused_port, prefix):
    """Every event failed at the broker, "Invalid topic", with nothing naming the prefix."""
    with pytest.raises(ValueError, match="topic_prefix must be letters, digits, '.', '_' and '-', at most 240"):
        KafkaSink(f"127.0.0.1:{refused_port}", topic_prefix=prefix)


def test_a_closed_sink_reports_instead_of_producing(refused_port):
    reported = Reported()
    sink = KafkaSink(f"127.0.0.1:{refused_port}", flush_timeout=0.2, on_error=reported)
    sink.close()

    sink.emit(one_of_each()[:1])

    assert len(reported.events) == 1 and "closed" in str(reported.calls[0][1])


def test_an_event_over_the_producers_limit_is_reported_naming_its_size_and_the_limit(refused_port):
    reported = Reported()
    sink = KafkaSink(f"127.0.0.1:{refused_port}", config={"message.max.bytes": 100_000}, on_error=reported)
    event = Event("behavioral", "upload", {"user_id": "u-1", "blob": "x" * 200_000})

    sink.emit([event])
    sink.close()

    ((events, error),) = reported.calls
    size = len(event.json) + len(b"u-1")
    assert events == [event] and not error.retryable
    assert f"{size:,} bytes" in str(error) and "100,000" in str(error) and "message.max.bytes" in str(error)


def test_a_close_while_a_batch_waits_for_room_in_the_producer_reports_every_event_of_it(refused_port):
    """The batch's events produced after close() had flushed and purged the producer were neither
    delivered nor reported: close() came while the consumer thread still held them."""
    reported = Reported()
    sink = KafkaSink(
        f"127.0.0.1:{refused_port}",
        config={"queue.buffering.max.messages": 10},
        flush_timeout=1,
        on_error=reported,
    )
    client = Client(sink)
    recorded = [client.record("behavioral", "click", user_id=f"u-{n}") for n in range(40)]
    time.sleep(0.3)  # the batch is with the sink, waiting for room past the first ten
    assert client.close(1)  # every event of it handed to the sink, which reported each
    assert sink.stats.failed == 40, sink.stats
    assert sorted(e.event_id for e in reported.events) == sorted(e.event_id for e in recorded)


# -- against a real broker ---------------------------------------------------------------------------


def create_topics(bootstrap: str, prefix: str, partitions: int = 3) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    names = [prefix + topic for topic in ("workflows", "jobs", "job_logs", "telemetry", "analytics")]
    futures = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1) for name in names])
    for future in futures.values():
        future.result(timeout=30)


@pytest.fixture
def prefix(kafka) -> str:
    """A topic prefix of the test's own, its five topics created with 3 partitions each."""
    prefix = f"t{uuid.uuid4().hex[:8]}."
    create_topics(kafka.bootstrap, prefix)
    return prefix


def message_id(value: bytes) -> str:
    data = json.loads(value)
    return data["event_id"] if "event_id" in data else data["EventKey"]  # compatibility events have no envelope


def consume(bootstrap: str, topics: list[str], expected: int, timeout: float = 60.0) -> list:
    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe(topics)
    messages = []
    deadline = time.monotonic() + timeout
    try:
        while len(messages) < expected and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            assert message.error() is None, message.error()
            messages.append(message)
    finally:
        consumer.close()
    return messages


@pytest.mark.kafka
def test_events_arrive_on_their_topics_with_the_workflow_as_key(kafka, prefix):
    sink = KafkaSink(kafka.bootstrap, topic_prefix=prefix)
    events = one_of_each()
    with Client(sink) as client:
        for event in events:
            client.send(event)

    messages = consume(kafka.bootstrap, sorted({sink.topic_for(event) for event in events}), expected=len(events))

    assert sink.stats.delivered == len(events) and sink.stats.failed == 0
    received = {message_id(m.value()): m for m in messages}
    for event in events:
        message = received[event.event_id]
        assert message.topic() == sink.topic_for(event)
        assert json.loads(message.value()) == event.to_dict()
        assert message.key() == (event.key.encode() if event.key else None)
    assert received[events[0].event_id].key() == b"w-1"  # workflow events keyed by workflow
    assert received[events[3].event_id].key() == b"u-1"  # telemetry keyed by user
    assert received[events[4].event_id].key() is None  # and unkeyed without either


@pytest.mark.kafka
def test_a_workflows_events_stay_in_order_on_one_partition(kafka):
    prefix = f"t{uuid.uuid4().hex[:8]}."
    create_topics(kafka.bootstrap, prefix, partitions=6)
    sink = KafkaSink(kafka.bootstrap, topic_prefix=prefix)
    per_workflow = {f"w-{n}": [] for n in range(5)}
    with Client(sink) as client:
        for step in range(200):
            for workflow_id, sent in per_workflow.items():
                attributes = {"user_id": "u-1", "workflow_id": workflow_id, "job_id": f"j-{step}", "count": 1}
                sent.append(client.record("job_log", "created", **attributes).event_id)

    messages = consume(kafka.bootstrap, [prefix + "job_logs"], expected=1000)

    for workflow_id, sent in per_workflow.items():
        mine = [m for m in messages if m.key() == workflow_id.encode()]
        assert len({m.partition() for m in mine}) == 1
        assert [json.loads(m.value())["event_id"] for m in mine] == sent


@pytest.mark.kafka
def test_nothing_accepted_is_lost_on_close(kafka, prefix):
    reported = Reported()
    sink = KafkaSink(kafka.bootstrap, topic_prefix=prefix, on_error=reported)
    client = Client(sink, queue_size=20_000)
    sent = [client.record("behavioral", "click", n=n).event_id for n in range(10_000)]

    assert client.close(timeout=60) is True

    assert sink.stats.delivered == 10_000 and reported.calls == []
    messages = consume(kafka.bootstrap, [prefix + "telemetry"], expected=10_000)
    assert sorted(json.loads(m.value())["event_id"] for m in messages) == sorted(sent)


def wait_for(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


@pytest.mark.kafka
def test_flush_returns_once_the_deliveries_are_counted(kafka, prefix):
    sink = KafkaSink(kafka.bootstrap, topic_prefix=prefix)
    client = Client(sink)
    try:
        for n in range(3):
            client.record("behavioral", "click", n=n)

        assert client.flush(timeout=30) is True

        assert sink.stats.delivered == 3 and sink.stats.failed == 0
    finally:
        client.close()


@pytest.mark.kafka
def test_a_sink_that_sends_rarely_learns_of_its_deliveries_without_another_emit(kafka, prefix):
    reported = Reported()
    sink = KafkaSink(kafka.bootstrap, topic_prefix=prefix, on_error=reported)
    # No topics under this prefix, and the broker creates none by itself: its event fails after 1 s.
    # (Only this sink's timeout is short: a busy machine can take longer than that to deliver.)
    lost = KafkaSink(kafka.bootstrap, topic_prefix="absent.", config={"message.timeout.ms": 1000}, on_error=reported)
    event, doomed = one_of_each()[3:5]
    try:
        sink.emit([event])
        lost.emit([doomed])

        assert wait_for(lambda: sink.stats.delivered == 1, timeout=60)
        assert wait_for(lambda: lost.stats.failed == 1, timeout=60) and reported.events == [doomed]
    finally:
        sink.close()
        lost.close()


@pytest.mark.kafka
def test_events_up_to_the_brokers_8_mib_are_delivered_and_a_bigger_one_is_refused_naming_both_sizes(kafka, prefix):
    reported = Reported()
    sink = KafkaSink(kafka.bootstrap, topic_prefix=prefix, on_error=reported)
    big = Event("behavioral", "upload", {"user_id": "u-1", "blob": "x" * 3_000_000})
    too_big = Event("behavioral", "upload", {"user_id": "u-1", "blob": "x" * (8 << 20)})
    with Client(sink) as client:
        client.send(big)
        client.send(too_big)

    assert sink.stats.delivered == 1 and sink.stats.failed == 1
    ((events, error),) = reported.calls
    assert events == [too_big]
    assert f"{len(too_big.json) + len(b'u-1'):,} bytes" in str(error) and "8,388,608" in str(error)
    (message,) = consume(kafka.bootstrap, [prefix + "telemetry"], expected=1)
    assert message_id(message.value()) == big.event_id and len(message.value()) == len(big.json)


@pytest.mark.kafka
def test_close_from_on_error_on_the_delivery_thread_closes_the_sink_and_reports_the_rest(kafka):
    """on_error runs on the sink's delivery thread; close() from it joined that very thread and
    raised, leaving the sink open and the later events without a report."""
    reported, outcome = Reported(), []
    sink: KafkaSink | None = None

    def close_on_first_error(events, error) -> None:
        reported(events, error)
        if not outcome:
            outcome.append("closing")
            try:
                sink.close()
                outcome.append("closed")
            except Exception as failure:  # noqa: BLE001 - the test reports it
                outcome.append(repr(failure))

    sink = KafkaSink(
        kafka.bootstrap, topic_prefix="absent.", config={"message.timeout.ms": 1000}, on_error=close_on_first_error
    )
    first, *rest = one_of_each()[:4]
    sink.emit([first])
    assert wait_for(lambda: len(outcome) == 2, timeout=60), outcome
    assert outcome == ["closing", "closed"]
    sink.emit(rest)  # after close: reported at once as undeliverable
    assert wait_for(lambda: len(reported.events) == 4, timeout=60)
    assert sink.stats.failed == 4


@pytest.mark.kafka
@pytest.mark.parametrize("filtered", [False, True], ids=["alone", "behind a FilterSink"])
def test_a_forked_child_delivers_through_a_producer_of_its_own(kafka, prefix, filtered):
    """librdkafka's threads do not survive a fork: the child's events went to a producer nothing
    ran, and were reported failed at close (behind a FilterSink too, which did not pass the fork on)."""
    sink = KafkaSink(kafka.bootstrap, topic_prefix=prefix)
    client = Client(FilterSink(sink, lambda event: True) if filtered else sink)
    client.send(one_of_each()[3])
    assert client.flush(60) and sink.stats.delivered == 1
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through its exit status
        ok = False
        try:
            for event in one_of_each()[3:5]:
                client.send(event)
            ok = client.close(60) and sink.stats.delivered == 2 and sink.stats.failed == 0
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child's events were not delivered"
    assert client.close(60) and sink.stats.delivered == 1


@pytest.mark.kafka
def test_an_event_keeps_its_key_when_the_dict_it_was_made_from_is_filled_again(kafka, prefix):
    """A template dict filled again for each workflow changed the events already sent: the key,
    read when the sink produced them, was the last workflow's, while their JSON kept their own."""
    sink = KafkaSink(kafka.bootstrap, topic_prefix=prefix)
    client = Client(sink, background=False)  # nothing reaches the producer before flush()
    template = {"user_id": "u-1", "kind": "HEARTBEAT"}
    sent = []
    for n in range(6):
        template["workflow_id"] = f"w-{n}"
        sent.append(client.send(Event("workflow", "created", template)))
    assert client.close()

    messages = consume(kafka.bootstrap, [prefix + "workflows"], expected=len(sent))

    assert sink.stats.delivered == len(sent)
    assert sorted((m.key().decode(), json.loads(m.value())["workflow_id"]) for m in messages) == [
        (f"w-{n}", f"w-{n}") for n in range(6)
    ]
