"""A consumer's insert in flight (embedded/bridge/in_flight.py), alone: one batch at a time, its
messages handed back for the commit only once its insert is over, and what the insert raised
raised to the consumer instead. The bridge's own tests run it against Kafka and ClickHouse."""

from __future__ import annotations

import threading

import pytest

from embedded.bridge.in_flight import InFlight


def test_a_batch_lands_with_its_messages_once_its_insert_is_over():
    in_flight = InFlight("bridge-jobs-0")
    release, inserted = threading.Event(), []

    def insert(messages: list, size: int) -> None:
        release.wait(30)
        inserted.append((messages, size))

    try:
        assert in_flight.land() == []  # nothing in flight: nothing to commit
        in_flight.start(insert, ["m1", "m2"], 20)
        assert in_flight.busy() and not in_flight.finished()
        release.set()
        assert in_flight.land() == ["m1", "m2"]
        assert inserted == [(["m1", "m2"], 20)]
        assert not in_flight.busy() and not in_flight.finished()
        assert in_flight.land() == []  # landed once: never committed twice
    finally:
        release.set()
        in_flight.close()


def test_a_second_batch_is_refused_before_the_first_has_landed():
    """Batches go in, and are committed, in the order they were consumed: never two at once."""
    in_flight = InFlight("bridge-jobs-0")
    try:
        in_flight.start(lambda messages, size: None, ["m1"], 10)
        with pytest.raises(RuntimeError, match="before the one in flight landed"):
            in_flight.start(lambda messages, size: None, ["m2"], 10)
        assert in_flight.land() == ["m1"]
    finally:
        in_flight.close()


def test_what_the_insert_raised_is_raised_by_land_and_nothing_is_handed_back_to_commit():
    in_flight = InFlight("bridge-jobs-0")

    def refused(messages: list, size: int) -> None:
        raise ConnectionError("ClickHouse went away")

    try:
        in_flight.start(refused, ["m1"], 10)
        with pytest.raises(ConnectionError, match="went away"):
            in_flight.land()
        assert in_flight.land() == []  # the failed batch is not committed later either
    finally:
        in_flight.close()


def test_a_consumer_going_away_waits_for_its_insert_and_only_logs_its_failure(caplog):
    in_flight = InFlight("bridge-jobs-0")

    def refused(messages: list, size: int) -> None:
        raise ConnectionError("ClickHouse went away")

    in_flight.start(refused, ["m1"], 10)
    in_flight.close()
    assert "bridge-jobs-0: the batch in flight ended with ConnectionError: ClickHouse went away" in caplog.text
