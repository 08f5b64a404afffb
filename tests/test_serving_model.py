"""The serving model's in-memory answers, as a pure unit: canned rows in, pages and sums out.

The answers are compared with ClickHouse's own over a real channel in test_grpc_serving.py; here
the corners a data set rarely hits: ties broken by workflow id, pages across ties, a kind no
workflow has, and a user whose workflows a poll has added but not yet summed.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from core.backend import WriteLog
from core.settings.grpc import GrpcSettings
from server.pagination import Position
from server.queries import Summary
from server.series import uncut
from server.serving import ServingModel, Stale, TooMany
from server.serving_fresh import Behind
from server.validation import FIRST_DAY, LAST_DAY, Period
from server.workflow_counts import ListingOrders, counts_of

# user, workflow, jobs, joblogs, seconds, completed, failed, cancelled, kind
ROWS = [
    ["u1", "w-b", 3, 10, 100, 2, 1, 0, "BATCH"],
    ["u1", "w-a", 3, 20, 50, 1, 1, 1, "CRON"],
    ["u1", "w-c", 1, 30, 100, 1, 0, 0, "BATCH"],
    ["u1", "w-d", 5, 0, 0, 0, 0, 5, "BATCH"],
    ["u2", "w-a", 2, 2, 2, 2, 0, 0, "CRON"],
]
# user, duration percentiles (p50, p90, p95, p99): u2 has no finished job, so no digest.
PERCENTILE_ROWS = [["u1", [1.5, 9.0, 9.5, 9.9]]]
# The series read: part, user, granularity, bucket's first day (days since 1970-01-01), workflows,
# jobs, joblogs, seconds, completed, failed, cancelled, percentiles (in the rows of part durations).
FRIDAY, MONDAY = (dt.date(2026, 11, 20) - dt.date(1970, 1, 1)).days, (dt.date(2026, 11, 16) - dt.date(1970, 1, 1)).days
NONE = [0] * 7
SERIES_ROWS = [
    ["counters", "u1", "day", FRIDAY + 3, 1, 5, 0, 0, 0, 0, 5, []],
    ["counters", "u1", "day", FRIDAY, 3, 7, 60, 250, 4, 2, 1, []],
    ["durations", "u1", "day", FRIDAY, *NONE, [1.5, 9.0, 9.5, 9.9]],
    ["durations", "u1", "day", FRIDAY + 3, *NONE, [None, None, None, None]],  # an empty digest: no percentiles
    ["counters", "u1", "week", MONDAY, 3, 7, 60, 250, 4, 2, 1, []],
    ["counters", "u1", "week", MONDAY + 7, 1, 5, 0, 0, 0, 0, 5, []],
    ["durations", "u1", "week", MONDAY, *NONE, [1.5, 9.0, 9.5, 9.9]],
]


class CannedBackend:
    """Answers the model's statements with ROWS, PERCENTILE_ROWS and SERIES_ROWS (the newest block never moves)."""

    writes = None

    def rows(self, sql: str, params: dict, timeout: float) -> list[list]:
        if "system.parts" in sql or "system.mutations" in sql:
            return [[0]]
        if "array join" in sql:
            return [list(row) for row in SERIES_ROWS]
        if "uniqExact(user_id, day)" in sql:  # how many buckets the series read would give
            return [[sum(row[0] == "counters" for row in SERIES_ROWS)]]
        if "duration_seconds_quantiles" in sql:
            return [list(row) for row in PERCENTILE_ROWS]
        return [list(row) for row in ROWS]


@pytest.fixture
def model() -> ServingModel:
    model = ServingModel(CannedBackend(), max_staleness=60, clock=lambda: 0.0)
    model.load()
    return model


def every_page(model: ServingModel, kind, sort: str, ascending: bool, size: int) -> list[list[str]]:
    pages, after = [], None
    while True:
        rows = model.list_workflows("u1", kind, sort, ascending, after, size + 1, 1.0)
        pages.append([row.workflow_id for row in rows[:size]])
        if len(rows) <= size:
            return pages
        last = rows[size - 1]
        after = Position(last.sort_value(sort), last.workflow_id)


@pytest.mark.parametrize(
    ("sort", "ascending"), list(itertools.product(("jobs", "joblogs", "job_execution_duration"), (True, False)))
)
@pytest.mark.parametrize("kind", [None, "BATCH"])
def test_pages_follow_the_order_with_ties_broken_by_workflow_id(model, sort, ascending, kind):
    column = {"jobs": 2, "joblogs": 3, "job_execution_duration": 4}[sort]
    mine = [row for row in ROWS if row[0] == "u1" and kind in (None, row[8])]
    # The statement's ORDER BY: the value (either way), then workflow id ascending.
    expected = [row[1] for row in sorted(mine, key=lambda row: ((1 if ascending else -1) * row[column], row[1]))]
    pages = every_page(model, kind, sort, ascending, size=2)
    assert list(itertools.chain(*pages)) == expected
    assert all(len(page) == 2 for page in pages[:-1])


def test_a_listing_follows_a_poll_that_changes_the_users_workflows():
    backend = MovingBackend()
    model = ServingModel(backend, max_staleness=60, clock=lambda: 0.0)
    model.load()
    first = [row.workflow_id for row in model.list_workflows("u1", None, "jobs", False, None, 10, 1.0)]
    assert first == ["w-d", "w-a", "w-b", "w-c"]
    # w-c gains jobs and w-e appears: the order kept for u1 is sorted again, u2's stays as it was.
    backend.rows_now = [
        *ROWS[:2],
        ["u1", "w-c", 9, 30, 100, 1, 0, 0, "BATCH"],
        ROWS[3],
        ["u1", "w-e", 4, 0, 0, 0, 0, 0, "CRON"],
    ]
    u2 = model.list_workflows("u2", None, "jobs", False, None, 10, 1.0)
    backend.newest = 1
    model.poll()
    after = [row.workflow_id for row in model.list_workflows("u1", None, "jobs", False, None, 10, 1.0)]
    assert after == ["w-c", "w-d", "w-e", "w-a", "w-b"]
    assert model.list_workflows("u2", None, "jobs", False, None, 10, 1.0) == u2


def test_listing_orders_keep_at_most_their_keys_dropping_the_oldest_first():
    orders = ListingOrders(max_keys=6)
    u1 = {row[1]: counts_of(row[2:]) for row in ROWS if row[0] == "u1"}  # four workflows
    u2 = {row[1]: counts_of(row[2:]) for row in ROWS if row[0] == "u2"}  # one
    by_jobs = orders.of("u1", u1, "jobs", True)
    assert orders.of("u1", u1, "jobs", True) is by_jobs  # kept: no sort
    assert orders.of("u1", dict(u1), "jobs", True) is not by_jobs  # another dict of workflows: sorted again
    by_jobs = orders.of("u1", u1, "jobs", True)  # and again for u1's own: now the oldest order kept
    orders.of("u2", u2, "jobs", True)
    orders.of("u1", u1, "joblogs", True)  # 4 + 1 + 4 keys: the oldest (u1 by jobs) goes
    assert orders.of("u2", u2, "jobs", True) is orders.of("u2", u2, "jobs", True)
    assert orders.of("u1", u1, "jobs", True) is not by_jobs
    kept = orders.of("u2", u2, "jobs", True)
    orders.forget({"u2"})
    assert orders.of("u2", u2, "jobs", True) is not kept


def test_a_listing_row_carries_the_workflows_counters_and_kind(model):
    [row] = [row for row in model.list_workflows("u1", None, "jobs", True, None, 10, 1.0) if row.workflow_id == "w-a"]
    assert (row.kind, row.jobs, row.joblogs, row.seconds, row.completed, row.failed, row.cancelled) == (
        "CRON",
        3,
        20,
        50,
        1,
        1,
        1,
    )


def test_counters_of_a_user_a_kind_and_a_workflow(model):
    assert model.counters("u1", None, None, 1.0) == ("", (4, 12, 60, 250, 4, 2, 6))
    assert model.counters("u1", None, "BATCH", 1.0) == ("", (3, 9, 40, 200, 3, 1, 5))
    assert model.counters("u1", None, "NO_SUCH_KIND", 1.0) == ("", (0, 0, 0, 0, 0, 0, 0))
    assert model.counters("u1", "w-a", None, 1.0) == ("CRON", (1, 3, 20, 50, 1, 1, 1))
    assert model.counters("u1", "w-x", None, 1.0) is None
    assert model.counters("nobody", None, None, 1.0) is None
    assert model.list_workflows("nobody", None, "jobs", True, None, 10, 1.0) is None
    assert (model.known("u2", None, 1.0), model.known("u2", "w-b", 1.0), model.known("u3", None, 1.0)) == (
        True,
        False,
        False,
    )


def test_a_user_a_poll_has_added_but_not_yet_summed_is_added_up_on_the_spot(model):
    # A poll puts a new user's workflows in place before it sums them; a call may come in between.
    model._users.pop("u2")
    assert model.counters("u2", None, None, 1.0) == ("", (1, 2, 2, 2, 2, 0, 0))


def test_a_user_of_more_workflows_than_it_goes_through_is_left_to_clickhouse():
    model = ServingModel(CannedBackend(), max_staleness=60, clock=lambda: 0.0, scanned_at_most=3)
    model.load()
    with pytest.raises(TooMany):
        model.list_workflows("u1", None, "jobs", True, None, 10, 1.0)
    with pytest.raises(TooMany):
        model.counters("u1", None, "BATCH", 1.0)
    # What needs no pass over the workflows is still answered.
    assert model.counters("u1", None, None, 1.0) == ("", (4, 12, 60, 250, 4, 2, 6))
    assert [row.workflow_id for row in model.list_workflows("u2", None, "jobs", True, None, 10, 1.0)] == ["w-a"]


def test_a_users_details_are_its_sums_and_its_percentiles(model):
    counters, percentiles = model.details("u1", 1.0)
    assert counters == (4, 12, 60, 250, 4, 2, 6)
    assert percentiles == (1.5, 9.0, 9.5, 9.9)
    assert model.details("u2", 1.0) == ((1, 2, 2, 2, 2, 0, 0), None)  # no finished job: no percentiles
    assert model.details("nobody", 1.0) is None


def test_a_users_series_are_its_buckets_that_begin_within_the_days_asked(model):
    friday, monday = dt.date(2026, 11, 20), dt.date(2026, 11, 23)
    by_day = [
        (friday, Summary(3, 7, 60, 250, 4, 2, 1, (1.5, 9.0, 9.5, 9.9))),
        (monday, Summary(1, 5, 0, 0, 0, 0, 5, None)),
    ]
    assert model.time_series("u1", "day", Period(), 1.0) == by_day
    assert model.time_series("u1", "day", Period(friday, monday - dt.timedelta(days=1)), 1.0) == by_day[:1]
    assert model.time_series("u1", "day", Period(monday, monday), 1.0) == by_day[1:]
    assert model.time_series("u1", "day", Period(last=friday - dt.timedelta(days=1)), 1.0) == []
    weeks = model.time_series("u1", "week", Period(dt.date(2026, 11, 23)), 1.0)
    assert weeks == [(monday, Summary(1, 5, 0, 0, 0, 0, 5, None))]
    assert model.time_series("u1", "month", Period(), 1.0) == []  # none read
    assert model.time_series("u2", "day", Period(), 1.0) == []
    assert model.time_series("nobody", "day", Period(), 1.0) == []


@pytest.mark.parametrize(
    ("granularity", "first", "last", "whole"),
    [
        ("day", "2026-11-18", "2026-11-18", True),
        ("week", "2026-11-16", "2026-11-29", True),  # Monday to Sunday
        ("week", "2026-11-17", "2026-11-29", False),
        ("week", "2026-11-16", "2026-11-28", False),
        ("week", None, "2026-11-22", True),
        ("week", "2026-11-23", None, True),
        ("month", "2026-11-01", "2026-12-31", True),
        ("month", "2026-02-01", "2026-02-28", True),
        ("month", "2026-11-02", None, False),
        ("month", None, "2026-11-30", True),
        ("month", None, "2026-11-29", False),
    ],
)
def test_days_that_cut_a_bucket_in_two_are_left_to_clickhouse(model, granularity, first, last, whole):
    period = Period(
        dt.date.fromisoformat(first) if first else FIRST_DAY, dt.date.fromisoformat(last) if last else LAST_DAY
    )
    assert uncut(period, granularity) is whole
    if not whole:
        with pytest.raises(Stale, match="cut"):
            model.time_series("u1", granularity, period, 1.0)


class RecordingBackend(CannedBackend):
    def __init__(self):
        self.sent: list[tuple[str, dict]] = []

    def rows(self, sql: str, params: dict, timeout: float) -> list[list]:
        self.sent.append((sql, dict(params)))
        return super().rows(sql, params, timeout)

    def series_reads(self) -> list[dict]:
        return [params for sql, params in self.sent if "array join" in sql]


@pytest.mark.parametrize("bound", [3, 4])
def test_more_buckets_than_it_may_hold_leave_time_series_to_clickhouse_unread(bound):
    # Four buckets: with room for three they are counted, never read; with room for four, read.
    backend = RecordingBackend()
    model = ServingModel(backend, max_staleness=60, clock=lambda: 0.0, max_series_points=bound)
    model.load()
    model.poll()
    if bound == 4:
        assert len(backend.series_reads()) == 2 and len(model.time_series("u1", "day", Period(), 1.0)) == 2
        return
    assert backend.series_reads() == []
    with pytest.raises(Stale, match="ANALYTICS_GRPC_SERVING_MAX_SERIES_POINTS"):
        model.time_series("u1", "day", Period(), 1.0)
    assert model.series.off is not None and model.series.of("u1", "day") is None
    assert model.details("u1", 1.0) is not None  # the rest of the model answers


def test_every_users_buckets_are_read_in_parts_of_users():
    backend = RecordingBackend()
    model = ServingModel(backend, max_staleness=60, clock=lambda: 0.0, series_part=3)
    model.load()  # four buckets, at most about three a read: two reads, each of half the users
    assert backend.series_reads() == [{"parts": 2, "part": 0}, {"parts": 2, "part": 1}]
    assert len(model.time_series("u1", "week", Period(), 1.0)) == 2


def test_buckets_a_poll_adds_past_the_bound_free_them_all():
    model = ServingModel(CannedBackend(), max_staleness=60, clock=lambda: 0.0, max_series_points=4)
    model.load()
    SERIES_ROWS.append(["counters", "u2", "day", FRIDAY, 1, 2, 2, 2, 2, 0, 0, []])
    try:
        model.poll()  # u2 changed (as every canned user does): a fifth bucket
    finally:
        SERIES_ROWS.pop()
    with pytest.raises(Stale, match="more than 4 buckets"):
        model.time_series("u1", "day", Period(), 1.0)


class MovingBackend(CannedBackend):
    """CannedBackend whose newest block of workflow_changes is ``newest``, recording each changes read,
    whose workflows' rows are ``rows_now``."""

    def __init__(self):
        self.newest = 0
        self.changes_read: list[dict] = []
        self.rows_now = ROWS

    def rows(self, sql: str, params: dict, timeout: float) -> list[list]:
        if "max_block_number" in sql:
            return [[self.newest]]
        if "workflow_changes" in sql and "duration_seconds_quantiles" not in sql:
            self.changes_read.append(dict(params))
        if "max(kind)" in sql:
            return [list(row) for row in self.rows_now]
        return super().rows(sql, params, timeout)


def test_the_poll_after_a_full_read_reads_again_what_committed_since_the_read_before_it():
    # A totals part may commit a moment after its changes part: a poll reads the blocks since the
    # poll before the previous one, and a full read must leave the same overlap behind it.
    backend = MovingBackend()
    model = ServingModel(backend, max_staleness=60, clock=lambda: 0.0)
    backend.newest = 5
    model.load()  # the first read: nothing before it
    backend.newest = 7
    model.poll()
    assert backend.changes_read[-1] == {"after": 5, "upto": 7}
    backend.newest = 9
    model.load()  # a full read again (a write no insert announces, or the periodic refresh)
    backend.newest = 10
    model.poll()
    assert backend.changes_read[-1] == {"after": 7, "upto": 10}  # blocks 8 and 9 again, not only 10


def test_the_memory_a_workflow_takes_is_said_alike_in_the_help_and_the_readme():
    """The help said about 500 bytes a workflow, README (and its measurement) about 600."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    measured = re.findall(r"about (\d+) bytes a workflow", readme)
    promised = re.findall(r"about (\d+) bytes each in memory", readme)
    helped = re.findall(r"about (\d+) bytes each", GrpcSettings.model_fields["grpc_serving_max_workflows"].description)
    assert measured and set(measured) == set(promised) == set(helped)


def test_after_a_call_went_to_clickhouse_for_lack_of_a_read_answers_come_from_a_newer_read():
    """Else a counter read from ClickHouse, then from a model a read behind, went down between two calls."""
    now = [0.0]
    backend = MovingBackend()
    model = ServingModel(backend, max_staleness=60, clock=lambda: now[0])
    model.load()  # sent at 0
    now[0] = 5.0
    model.answered_elsewhere(TooMany("a user of many workflows"))  # a call the model never answers
    assert model.user_totals("u1", 1.0) is not None
    model.answered_elsewhere(Behind("the serving model is 61.000s old"))
    with pytest.raises(Behind, match="went to ClickHouse after the serving model's newest read"):
        model.user_totals("u1", 0.02)  # no feed runs here: no read comes within the wait
    now[0] = 6.0
    backend.newest = 1
    model.poll()  # sent at 6, after the call that went to ClickHouse
    assert model.user_totals("u1", 1.0) is not None


def test_a_series_lookup_that_waited_for_the_read_that_turned_series_off_goes_to_clickhouse():
    """Read-your-writes: the lookup waits for the read of the user's insert; that read brings the
    buckets past the bound and empties the series. It answered OK with no buckets at all."""
    backend = CannedBackend()
    backend.writes = WriteLog()
    model = ServingModel(backend, max_staleness=60, clock=lambda: 0.0, max_series_points=4)
    model.load()
    backend.writes.inserted()  # the user's insert: a lookup now waits for the read that covers it
    with ThreadPoolExecutor(1) as pool:
        lookup = pool.submit(model.time_series, "u1", "day", Period(), 60.0)
        while not model._wake.is_set():  # the lookup asked the feed for a read and waits for it
            threading.Event().wait(0.01)
        SERIES_ROWS.append(["counters", "u2", "day", FRIDAY, 1, 2, 2, 2, 2, 0, 0, []])
        try:
            model.poll()  # the read it waits for: a fifth bucket, so the series are emptied, off
        finally:
            SERIES_ROWS.pop()
        with pytest.raises(Stale, match="more than 4 buckets"):
            lookup.result(30)
