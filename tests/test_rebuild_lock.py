"""One rebuild of days at a time (operations/rebuild_lock.py): two at once would each insert the
same corrections, and the days would be corrected twice."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from urllib.parse import urlencode

import pytest

from core.names import DATABASE, REBUILD_LOCK
from operations import rebuild_lock as rebuild_lock_module
from operations.backfill import BackfillFailed, rebuild_days
from operations.rebuild_lock import RebuildBusy, _process_started, rebuild_lock
from tests import datasets
from tests.checks import assert_matches
from tests.intake import HTTP, deliver, execute, query

LOCK = f"{DATABASE}.{REBUILD_LOCK}"
MEASURES = "workflow_events, jobs, jobs_completed, jobs_failed, jobs_cancelled, job_execution_seconds, joblogs"


def corrupt(server, prefix: str, day) -> None:
    """The day's counters of this dataset's workflows counted again, in the totals and in the day."""
    where = f"day = '{day}' AND startsWith(user_id, '{prefix}')"
    execute(
        server,
        f"""INSERT INTO analytics.workflow_totals (user_id, workflow_id, {MEASURES})
            SELECT user_id, workflow_id, {", ".join(f"sum({m})" for m in MEASURES.split(", "))}
            FROM analytics.workflow_daily WHERE {where} GROUP BY user_id, workflow_id""",
    )
    execute(server, f"INSERT INTO analytics.workflow_daily SELECT * FROM analytics.workflow_daily WHERE {where}")


def lock_rows(server) -> list[dict]:
    return query(server, f"SELECT comment FROM system.tables WHERE database = '{DATABASE}' AND name = '{REBUILD_LOCK}'")


def test_two_backfills_of_a_corrupted_day_at_once_correct_it_once(analytics_db):
    settings = analytics_db.settings()
    dataset = datasets.generate(seed=71, users=3)
    deliver(analytics_db, dataset.messages, batch_size=100_000)
    day = sorted({day for (_, _, day) in dataset.expected.daily_jobs})[3]
    failures = []

    def backfill():
        try:
            rebuild_days(settings, [day])
        except BaseException as error:  # noqa: BLE001 - reported below
            failures.append(error)

    # One round: without the lock it failed in each of three tries (one backfill dropped the other's
    # staging tables as stale); three rounds took two minutes of a worker.
    corrupt(analytics_db, dataset.prefix, day)
    both = [threading.Thread(target=backfill) for _ in range(2)]
    for thread in both:
        thread.start()
    for thread in both:
        thread.join(300)
    assert not failures
    assert_matches(analytics_db, dataset)
    assert not lock_rows(analytics_db)  # released


def test_a_rebuild_waits_for_the_one_holding_the_lock(analytics_db):
    settings = analytics_db.settings()
    done = threading.Event()
    with rebuild_lock(settings):
        waiting = threading.Thread(target=lambda: (rebuild_days(settings, [dt.date(2026, 11, 20)]), done.set()))
        waiting.start()
        assert not done.wait(2.0)  # held here: it waits
    waiting.join(120)
    assert done.is_set()


def test_a_lock_whose_holder_died_is_taken_over(analytics_db):
    settings = analytics_db.settings()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    holder = {"host": socket.gethostname(), "pid": int(dead.stdout), "since": "2026-12-01T00:00:00+00:00"}
    execute(analytics_db, f"CREATE TABLE {LOCK} (holder String) ENGINE = Memory COMMENT '{json.dumps(holder)}'")
    with rebuild_lock(settings, wait_s=5):
        [row] = lock_rows(analytics_db)
        assert json.loads(row["comment"])["pid"] == os.getpid()


def test_a_lock_held_elsewhere_past_the_wait_is_named(analytics_db):
    settings = analytics_db.settings()
    holder = {"host": "elsewhere.example", "pid": 1, "since": "2999-01-01T00:00:00+00:00"}
    execute(analytics_db, f"CREATE TABLE {LOCK} (holder String) ENGINE = Memory COMMENT '{json.dumps(holder)}'")
    try:
        with pytest.raises(RebuildBusy) as busy, rebuild_lock(settings, wait_s=1):
            pass
        assert "since 2999-01-01T00:00:00+00:00 (elsewhere.example, process 1)" in str(busy.value)
        assert f"DROP TABLE {LOCK}" in str(busy.value)
        with pytest.raises(BackfillFailed, match="another rebuild has held the lock"):
            rebuild_days(settings, [dt.date(2026, 11, 20)], wait_s=1)
    finally:
        execute(analytics_db, f"DROP TABLE IF EXISTS {LOCK}")


def test_a_waiters_lock_says_since_when_it_holds_it(analytics_db):
    settings = analytics_db.settings()
    held, release = threading.Event(), threading.Event()

    def second() -> None:
        with rebuild_lock(settings):
            held.set()
            release.wait(60)

    with rebuild_lock(settings):
        waiter = threading.Thread(target=second)
        waiter.start()
        assert not held.wait(2.0)
        released = dt.datetime.now(dt.UTC)
    try:
        assert held.wait(60)
        [row] = lock_rows(analytics_db)
        assert dt.datetime.fromisoformat(json.loads(row["comment"])["since"]) >= released - dt.timedelta(seconds=1)
    finally:
        release.set()
        waiter.join(60)


def test_clickhouse_gone_before_the_release_does_not_hide_the_rebuilds_error(tmp_path, caplog):
    from tests import embedded_server

    server = embedded_server.start(tmp_path / "data")
    try:
        execute(server, f"CREATE DATABASE {DATABASE}")
        settings = server.settings()
        with pytest.raises(BackfillFailed, match="the rebuild's own error"), rebuild_lock(settings):
            server.stop(signal.SIGKILL)
            raise BackfillFailed("the rebuild's own error")
        assert "could not release the rebuild lock" in caplog.text
    finally:
        server.stop()


def test_staging_tables_a_dead_rebuild_left_are_dropped_by_the_next(analytics_db):
    for name in ("workflow_daily__rebuild_0ld5uff1x", "workflow_daily__rebuild_0ld5uff1xgone"):
        execute(analytics_db, f"CREATE TABLE {DATABASE}.{name} AS {DATABASE}.workflow_daily")
    rebuild_days(analytics_db.settings(), [dt.date(2026, 11, 20)])
    left = f"SELECT name FROM system.tables WHERE database = '{DATABASE}' AND name LIKE '%__rebuild_%'"
    assert query(analytics_db, left) == []


def test_a_lock_held_for_hours_by_a_live_process_of_this_host_is_not_taken_over(analytics_db):
    holder = {"host": socket.gethostname(), "pid": os.getpid(), "since": "2026-01-01T00:00:00+00:00"}
    holder["started"] = _process_started(os.getpid())
    execute(analytics_db, f"CREATE TABLE {LOCK} (holder String) ENGINE = Memory COMMENT '{json.dumps(holder)}'")
    try:
        with pytest.raises(RebuildBusy), rebuild_lock(analytics_db.settings(), wait_s=1):
            pass
        [row] = lock_rows(analytics_db)
        assert json.loads(row["comment"]) == holder
    finally:
        execute(analytics_db, f"DROP TABLE IF EXISTS {LOCK}")


def test_a_lock_whose_pid_is_now_another_process_is_taken_over(analytics_db):
    holder = {"host": socket.gethostname(), "pid": os.getpid(), "started": "1", "since": "2026-12-01T00:00:00+00:00"}
    execute(analytics_db, f"CREATE TABLE {LOCK} (holder String) ENGINE = Memory COMMENT '{json.dumps(holder)}'")
    with rebuild_lock(analytics_db.settings(), wait_s=5):
        [row] = lock_rows(analytics_db)
        assert json.loads(row["comment"])["started"] == _process_started(os.getpid()) != "1"


def test_of_two_waiters_that_find_the_same_dead_holder_one_takes_the_lock_over(analytics_db, monkeypatch):
    """Both read the dead holder; the first takes the lock over while the second is still judging
    it. The second dropped the first's fresh lock, took it too, and both rebuilt at once."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    holder = {"host": socket.gethostname(), "pid": int(dead.stdout), "since": "2026-12-01T00:00:00+00:00"}
    execute(analytics_db, f"CREATE TABLE {LOCK} (holder String) ENGINE = Memory COMMENT '{json.dumps(holder)}'")
    both_judging, judged = threading.Barrier(2), []
    real_stale = rebuild_lock_module._stale

    def slow_second(found, now, stale_after_s):
        if found == holder and len(judged) < 2:
            judged.append(threading.current_thread().name)
            both_judging.wait(30)
            if judged[1] == threading.current_thread().name:
                time.sleep(1.0)  # the first has taken the lock over by now
        return real_stale(found, now, stale_after_s)

    monkeypatch.setattr(rebuild_lock_module, "_stale", slow_second)
    held: list[tuple[float, float]] = []

    def rebuild() -> None:
        with rebuild_lock(analytics_db.settings(), wait_s=60):
            start = time.monotonic()
            time.sleep(1.5)
            held.append((start, time.monotonic()))

    waiters = [threading.Thread(target=rebuild, name=f"waiter-{n}") for n in range(2)]
    for waiter in waiters:
        waiter.start()
    for waiter in waiters:
        waiter.join(120)
    assert len(held) == 2
    first, second = sorted(held)
    assert first[1] <= second[0], "both held the lock at once"


def run_marked(server, comment: str, seconds: float) -> threading.Thread:
    """A statement of ``seconds`` carrying ``comment`` as its log_comment, as a rebuild's dbt sends them."""
    url = f"{server.url}/?{urlencode({'log_comment': comment})}"
    sql = f"SELECT sleepEachRow(0.5) FROM numbers({int(seconds * 2)}) SETTINGS max_block_size = 1"
    statement = threading.Thread(target=HTTP.request, args=("POST", url), kwargs={"body": sql.encode()})
    statement.start()
    running = f"SELECT count() AS n FROM system.processes WHERE Settings['log_comment'] = '{comment}'"
    deadline = time.monotonic() + 30
    while query(server, running) != [{"n": 1}]:
        assert time.monotonic() < deadline, "the statement did not start"
        time.sleep(0.05)
    return statement


def still_running(server, comment: str) -> int:
    sql = f"SELECT count() AS n FROM system.processes WHERE Settings['log_comment'] = '{comment}'"
    return int(query(server, sql)[0]["n"])


def test_the_lock_is_released_once_its_statements_have_ended_on_the_server(analytics_db):
    """A dbt stopped mid-statement left it running on the server, and the lock went at once: a
    rebuild waiting for it read the counters before that statement's deltas and corrected again."""
    with rebuild_lock(analytics_db.settings()) as comment:
        statement = run_marked(analytics_db, comment, seconds=3)  # as if its dbt had been stopped now
    assert still_running(analytics_db, comment) == 0
    statement.join(30)
    assert not lock_rows(analytics_db)


def test_statements_that_outlive_their_time_are_killed_before_the_lock_goes(analytics_db):
    started = time.monotonic()
    with rebuild_lock(analytics_db.settings(), statements_end_s=1) as comment:
        statement = run_marked(analytics_db, comment, seconds=120)
    assert still_running(analytics_db, comment) == 0 and time.monotonic() - started < 60
    statement.join(30)
    assert not statement.is_alive() and not lock_rows(analytics_db)


def test_a_dead_holders_statements_end_before_its_lock_is_taken_over(analytics_db):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    comment = "analytics rebuild of a dead holder"
    holder = {"host": socket.gethostname(), "pid": int(dead.stdout), "since": "2026-12-01T00:00:00+00:00"}
    holder["statements"] = comment
    execute(analytics_db, f"CREATE TABLE {LOCK} (holder String) ENGINE = Memory COMMENT '{json.dumps(holder)}'")
    statement = run_marked(analytics_db, comment, seconds=3)
    with rebuild_lock(analytics_db.settings(), wait_s=60):
        assert still_running(analytics_db, comment) == 0
    statement.join(30)
