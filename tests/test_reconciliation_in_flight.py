"""The reconciliation checks run while events arrive report the real mismatches and only those.

An insert runs its block through the views one table after another, so for a moment its raw rows
are in and the aggregates after them are not: a check comparing the two at that moment saw a
mismatch that was never there (about one check in six under this feed, before the checks left
such workflows out: dbt_project/macros/in_flight.sql). Here a thread delivers events without a
pause while every check runs again and again, as compiled by dbt, the way dbt runs them; a count
made wrong on a settled workflow must be reported by every round all the same, and nothing else.
ClickHouse gives a query no snapshot across tables, so a check reads the in-flight time before any
table it compares and the workflows in flight after them: an insert whose rows the comparison sees
half counted was running when the time was read, or began after it.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from itertools import count
from urllib.parse import urlencode

import pytest

from embedded.bridge.framing import row_binary
from operations.dbt import dbt_vars, run_dbt
from tests import datasets, log_datasets
from tests.intake import HTTP, deliver, execute, query
from tests.malformed import valid_event
from tests.test_contract_verdicts import KafkaRecord

pytestmark = pytest.mark.long_file(16)  # seconds of a worker, measured: run first (tests/scheduling.py)

CHECKS = (
    "job_log_totals_match_raw_history",
    "workflow_totals_match_raw_history",
    "workflow_daily_matches_raw_history",
    "job_completions_follow_job_events",
    "workflow_totals_add_up_to_daily",
)
ROUNDS = 15
# The checks that read workflow_totals, where the test makes one count wrong.
READ_THE_WRONG_COUNT = {"workflow_totals_match_raw_history", "workflow_totals_add_up_to_daily"}


@pytest.fixture(scope="module")
def compiled(analytics_db, tmp_path_factory) -> dict[str, str]:
    settings = analytics_db.settings()
    target = tmp_path_factory.mktemp("compiled")
    result = run_dbt(settings, "compile", "--select", *CHECKS, capture=True, target_path=target)
    assert result.returncode == 0, result.stdout[-4000:]
    folder = target / "compiled" / "analytics" / "dbt_project" / "tests"
    return {name: (folder / f"{name}.sql").read_text() for name in CHECKS}


class Feed(threading.Thread):
    """Delivers one generated dataset after another, in small batches, until stopped."""

    def __init__(self, server) -> None:
        super().__init__(daemon=True)
        self.server, self.stopping, self.delivered, self.error = server, threading.Event(), 0, None
        self.prefixes: list[str] = []  # of the workflow ids delivered (other tests share the database)

    def run(self) -> None:
        try:
            for seed in count(5000):
                if self.stopping.is_set():
                    return
                dataset = datasets.generate(seed, users=2, workflows_per_user=2)
                logs = log_datasets.generate_logs(seed=seed, users=1, jobs_per_user=2, lines=(5, 30))
                self.prefixes += [dataset.prefix, logs.prefix]
                deliver(self.server, dataset.messages, batch_size=50)
                deliver(self.server, logs.messages, batch_size=20)
                self.delivered += 1
        except Exception as error:  # noqa: BLE001 - the test reports it
            self.error = error

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=60)
        assert self.error is None, self.error


def failing_rows(server, sql: str, prefixes: list[str]) -> list[dict]:
    """The check's failing rows of workflows with these prefixes, as dbt would count them."""
    rows = query(server, f"SELECT * FROM ({sql}) AS dbt_internal_test")
    return [row for row in rows if row["workflow_id"].startswith(tuple(prefixes))]


def test_checks_run_while_events_arrive_report_only_real_mismatches(analytics_db, compiled):
    settled = datasets.generate(4999, users=1, workflows_per_user=1)
    deliver(analytics_db, settled.messages)
    [(user, workflow)] = {(m["user_id"], m["workflow_id"]) for m in settled.messages["workflows"]}
    wrong = f"""INSERT INTO analytics.workflow_totals (user_id, workflow_id, jobs)
                VALUES ('{user}', '{workflow}', {{n}})"""
    feed = Feed(analytics_db)
    feed.start()
    failures: dict[str, list[list[dict]]] = {}
    try:
        execute(analytics_db, wrong.format(n=1))  # one job counted that never ran
        try:
            for _ in range(ROUNDS):
                for name, sql in compiled.items():
                    rows = failing_rows(analytics_db, sql, [settled.prefix, *feed.prefixes])
                    if name in READ_THE_WRONG_COUNT:
                        # Reported in every round, in flight or not around it: the check still bites.
                        assert (user, workflow) in [(r["user_id"], r["workflow_id"]) for r in rows], rows
                        rows = [r for r in rows if (r["user_id"], r["workflow_id"]) != (user, workflow)]
                    if rows:
                        failures.setdefault(name, []).append(rows)
        finally:
            execute(analytics_db, wrong.format(n=2**64 - 1))  # the sum wraps back by one
    finally:
        feed.stop()
    assert feed.delivered >= 3, "the feed did not run beside the checks"
    # Without leaving them out, about one check in six reports a workflow in flight (45 of 160 runs
    # of one check, measured). With the in-flight time read after the comparison had taken its
    # parts, an insert that ended in between was reported (stored_kind '', its aggregates not in
    # yet): 2 of 300 checks beside this feed on a loaded machine, 4 of 75 in one CI run.
    assert failures == {}, failures
    for name, sql in compiled.items():  # quiet again: every workflow is compared, and all agree
        assert failing_rows(analytics_db, sql, [settled.prefix, *feed.prefixes]) == [], name


def test_a_workflow_whose_kafka_timestamp_is_ahead_of_now_is_checked_all_the_same(analytics_db, compiled):
    """A producer whose clock runs six hours ahead stamps its messages so: the workflow counted as
    in flight until then, and no check reported its numbers, however wrong."""
    user = f"ahead-{uuid.uuid4().hex[:8]}"
    ahead = int((time.time() + 6 * 3600) * 1000)
    event = json.dumps({**valid_event("analytics", 1, user), "EventKey": f"{user}-key"}).encode()
    url = f"{analytics_db.url}/?{urlencode({'query': 'INSERT INTO analytics.analytics_messages FORMAT RowBinary'})}"
    body = row_binary(f"{user}.analytics".encode(), [KafkaRecord(event, 0, ahead)])
    assert HTTP.request("POST", url, body=body).status == 200
    workflow = valid_event("analytics", 1, user)["WorkflowID"]
    wrong = (
        f"INSERT INTO analytics.workflow_totals (user_id, workflow_id, joblogs) VALUES ('{user}', '{workflow}', {{n}})"
    )
    execute(analytics_db, wrong.format(n=7))
    try:
        check = compiled["workflow_totals_match_raw_history"]
        deadline = time.monotonic() + 60  # once its part is older than the check's start (a second)
        while not failing_rows(analytics_db, check, [f"{user}-"]):
            assert time.monotonic() < deadline, "a workflow stamped ahead of now is never checked"
            time.sleep(0.5)
    finally:  # the sum wraps back by seven: later files' checks find the database as it was
        execute(analytics_db, wrong.format(n=2**64 - 7))


def test_a_long_insert_into_another_database_leaves_no_workflow_out(analytics_db, compiled):
    """Any running insert counted: while an export or another project's load ran for an hour, every
    workflow ingested meanwhile was left out of the checks (and of the rebuild's corrections)."""
    other = f"elsewhere_{uuid.uuid4().hex[:8]}"
    execute(analytics_db, f"CREATE DATABASE {other}")
    execute(analytics_db, f"CREATE TABLE {other}.t (n UInt64) ENGINE = Memory")
    query_id = f"long-{uuid.uuid4().hex}"
    long_insert = (
        f"INSERT INTO {other}.t SELECT number FROM numbers(240) WHERE sleepEachRow(0.5) = 0 SETTINGS max_block_size = 1"
    )
    url = f"{analytics_db.url}/?{urlencode({'query_id': query_id})}"
    running = threading.Thread(target=HTTP.request, args=("POST", url), kwargs={"body": long_insert.encode()})
    running.start()
    try:
        processes = "SELECT count() AS n FROM system.processes WHERE query_kind = 'Insert'"
        processes += f" AND position(query, '{other}.t') > 0"
        deadline = time.monotonic() + 30
        while query(analytics_db, processes) != [{"n": 1}]:
            assert time.monotonic() < deadline, "the long insert did not start"
            time.sleep(0.1)
        dataset = datasets.generate(4998, users=1, workflows_per_user=1)
        deliver(analytics_db, dataset.messages)  # ingested while the other insert runs
        [(user, workflow)] = {(m["user_id"], m["workflow_id"]) for m in dataset.messages["workflows"]}
        wrong = (
            f"INSERT INTO analytics.workflow_totals (user_id, workflow_id, jobs) VALUES ('{user}', '{workflow}', {{n}})"
        )
        execute(analytics_db, wrong.format(n=1))
        try:
            rows = failing_rows(analytics_db, compiled["workflow_totals_match_raw_history"], [dataset.prefix])
            assert [(r["user_id"], r["workflow_id"]) for r in rows] == [(user, workflow)], rows
            assert query(analytics_db, processes) == [{"n": 1}]  # reported while the other insert still ran
        finally:  # the sum wraps back by one
            execute(analytics_db, wrong.format(n=2**64 - 1))
    finally:
        execute(analytics_db, f"KILL QUERY WHERE query_id = '{query_id}' SYNC")
        running.join(60)
        execute(analytics_db, f"DROP DATABASE {other}")


@pytest.mark.parametrize(
    ("given", "compiled_as", "refusal"),
    [
        # `* 1000` repeated the string: read as 0 seconds, without a word
        ("abc", None, 'must be a number of seconds from 0 to 86400, not "abc"'),
        # a number in a JSON string (`--vars '{"reconcile_settle_seconds": "10"}'`) became 2,000 digits
        ("10", "toIntervalMillisecond(10000)", None),
    ],
)
def test_the_settle_var_given_to_dbt_by_hand_is_checked_as_the_setting_is(
    analytics_db, tmp_path, given, compiled_as, refusal
):
    settings = analytics_db.settings()
    variables = json.dumps({**dbt_vars(settings), "reconcile_settle_seconds": given})
    check = "workflow_daily_matches_raw_history"
    result = run_dbt(settings, "compile", "--select", check, "--vars", variables, capture=True, target_path=tmp_path)
    if refusal:
        assert result.returncode != 0
        assert f"var reconcile_settle_seconds {refusal}" in result.stdout
    else:
        assert result.returncode == 0, result.stdout[-3000:]
        sql = (tmp_path / "compiled" / "analytics" / "dbt_project" / "tests" / f"{check}.sql").read_text()
        assert compiled_as in sql
