"""When a fenced bridge consumer stops (embedded/bridge/fences.py), as a pure unit with a fake clock.

The real twin (a second bridge of the same instance name, which must stop the first) runs in
test_bridge_scale_out.py; here, the broker restarts that fenced consumers by their own rejoin and
stopped the bridge after the third, blaming a twin that did not exist.
"""

from __future__ import annotations

from confluent_kafka import KafkaError

from embedded.bridge.fences import FENCE_WINDOW_S, FENCES_TOLERATED, Fences


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
