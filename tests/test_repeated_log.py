"""A failure repeated every turn of a loop is logged when it starts, once a minute while it lasts
(with how often it happened since), and when it ends: ClickHouse down under the gRPC serving model
logged a warning ten times a second."""

from __future__ import annotations

import logging

from core.repeated_log import RepeatedFailure


def test_a_failure_repeated_every_turn_is_logged_once_a_minute_and_its_end_once(caplog):
    now = [0.0]
    failures = RepeatedFailure(logging.getLogger("loop"), "the read failed", clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="loop"):
        for _ in range(600):  # a minute of turns, ten a second
            failures.failed("unreachable")
            now[0] += 0.1
        failures.failed("unreachable")  # a minute after the first line
        failures.succeeded()
        failures.succeeded()
        failures.failed("refused")  # a new failure is logged at once
    assert [record.getMessage() for record in caplog.records] == [
        "the read failed: unreachable",
        "the read failed: unreachable (599 more times since the last line)",
        "the read failed: works again",
        "the read failed: refused",
    ]
