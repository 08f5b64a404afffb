"""When a fenced bridge consumer stops (embedded/bridge/fences.py), and how librdkafka's repeated
log lines are passed on, as pure units with a fake clock.

The real twin (a second bridge of the same instance name, which must stop the first) runs in
test_bridge_scale_out.py; here, the broker restarts that fenced consumers by their own rejoin and
stopped the bridge after the third, blaming a twin that did not exist.
"""

from __future__ import annotations

import logging

from confluent_kafka import KafkaError

from embedded.bridge.fences import FENCE_WINDOW_S, FENCES_TOLERATED, Fences
from embedded.bridge.librdkafka_log import REPEATS_EVERY_S, LibrdkafkaLog


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_fences_with_the_broker_in_reach_stop_the_consumer_after_the_tolerated_ones():
    clock = Clock()
    fences = Fences(clock)
    assert [fences.one_too_many() for _ in range(FENCES_TOLERATED)] == [False] * FENCES_TOLERATED
    assert fences.one_too_many()


def test_fences_that_follow_the_broker_out_of_reach_are_its_restarts_and_never_stop_it():
    clock = Clock()
    fences = Fences(clock)
    for _ in range(6):  # a broker restarted six times, 15 s apart: each restart fences the member
        fences.client_error(KafkaError(KafkaError._TRANSPORT, "Connection refused"))
        clock.now += 1.0
        assert not fences.one_too_many()
        clock.now += 14.0


def test_a_broker_in_reach_for_a_window_counts_fences_again():
    clock = Clock()
    fences = Fences(clock)
    fences.client_error(KafkaError(KafkaError._ALL_BROKERS_DOWN, "all brokers down"))
    clock.now += FENCE_WINDOW_S + 1
    fences.client_error(KafkaError(KafkaError._MSG_TIMED_OUT, "not the broker's absence"))
    assert [fences.one_too_many() for _ in range(FENCES_TOLERATED + 1)] == [False] * FENCES_TOLERATED + [True]


def test_librdkafka_lines_that_repeat_are_passed_on_once_a_minute_with_their_count(caplog):
    """A broker down for 27 s gave 1,700 lines of "Connection refused", one per consumer and retry."""
    clock = Clock()
    librdkafka = LibrdkafkaLog("bridge-jobs-0", clock=clock)
    refused = "127.0.0.1:%d/1: Connect to ipv4#127.0.0.1:%d failed: Connection refused (after %dms in state CONNECT)"
    with caplog.at_level(logging.INFO, logger="embedded.bridge.consumer"):
        for n in range(200):
            librdkafka.log(logging.ERROR, refused, 9092, 9092, n % 3)
            clock.now += 0.1
        librdkafka.log(logging.WARNING, "jobs [0]: offset reset (at offset 17, broker 1) to offset BEGINNING")
        clock.now += REPEATS_EVERY_S
        librdkafka.log(logging.ERROR, refused, 9092, 9092, 0)
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 3, lines
    assert lines[2].endswith("(199 more like it in the last 80 s)")
    assert librdkafka.resets == [("jobs", 0, 17)]
