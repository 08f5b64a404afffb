"""On a cluster the service reads every shard through the Distributed `<aggregate>_all` tables."""

from __future__ import annotations

import pytest

from core.clickhouse.backend import HttpBackend
from server.logs import JobRef, LogFilter, LogQueries
from server.queries import Queries, Scope, Totals, on_cluster
from tests import datasets, log_datasets
from tests.intake import deliver, execute

AGGREGATES = ("workflow_totals", "workflow_daily", "job_duration_daily")
LOG_TABLES = ("job_log_events", "job_log_totals", "job_first_seen", "job_completions")


def test_every_aggregate_is_renamed_and_nothing_else():
    sql = (
        "select 1 from analytics.workflow_totals join analytics.workflow_daily_extra using (x) where y in "
        "(select 1 from analytics.job_duration_daily)"
    )
    assert on_cluster(sql) == (
        "select 1 from analytics.workflow_totals_all join analytics.workflow_daily_extra "
        "using (x) where y in (select 1 from analytics.job_duration_daily_all)"
    )


@pytest.fixture
def stand_in_distributed_tables(analytics_db):
    # One node has no cluster to distribute over; views with the Distributed tables' names stand in.
    for name in AGGREGATES + LOG_TABLES:
        execute(analytics_db, f"CREATE VIEW analytics.{name}_all AS SELECT * FROM analytics.{name}")
    yield
    for name in AGGREGATES + LOG_TABLES:
        execute(analytics_db, f"DROP VIEW IF EXISTS analytics.{name}_all")


def test_cluster_queries_read_the_distributed_tables_and_answer_the_same(analytics_db, stand_in_distributed_tables):
    dataset = datasets.generate(seed=51, users=2)
    deliver(analytics_db, dataset.messages)
    backend = HttpBackend(analytics_db.url)
    single, cluster = Queries(backend), Queries(backend, cluster=True)
    user = dataset.expected.users[0]
    workflow = sorted(w for u, w in dataset.expected.workflows if u == user)[0]
    expected = dataset.expected
    # Against the generator's own counts, so that a mistake both paths share cannot pass.
    assert cluster.user_totals(user, 10) == Totals(*expected.user(user))
    assert cluster.workflow_totals(user, workflow, 10) == Totals(1, *expected.workflow(user, workflow))
    _, summary = cluster.summary(Scope(user), 10)
    assert (summary.workflows, summary.jobs, summary.joblogs, summary.seconds) == expected.user(user)
    series = cluster.time_series(Scope(user), "week", 10)
    assert sum(bucket.jobs for _, bucket in series) == expected.user(user)[1]
    # And the same answers as on one node, kind filter and buckets included.
    assert cluster.summary(Scope(user, kind="CONTAINER"), 10) == single.summary(Scope(user, kind="CONTAINER"), 10)
    assert series == single.time_series(Scope(user), "week", 10)
    # Without the stand-ins the cluster queries fail: they really read the _all tables.
    execute(analytics_db, "DROP VIEW analytics.workflow_totals_all")
    with pytest.raises(Exception, match="workflow_totals_all"):
        cluster.user_totals(user, 10)


def test_cluster_log_queries_read_the_distributed_tables_and_answer_the_same(analytics_db, stand_in_distributed_tables):
    logs = log_datasets.generate_logs(seed=52, users=1, jobs_per_user=2, lines=(10, 40))
    deliver(analytics_db, logs.messages)
    backend = HttpBackend(analytics_db.url)
    single, cluster = LogQueries(Queries(backend)), LogQueries(Queries(backend, cluster=True))
    job = JobRef(**logs.jobs[0].ids)
    assert (
        cluster.log_state(job, 10).counted_lines == single.log_state(job, 10).counted_lines == len(logs.jobs[0].lines)
    )
    where = LogFilter(contains="e")
    page, cut = cluster.sized_page(job, where, True, None, 20, 1 << 20, 10)
    assert (page, cut) == single.sized_page(job, where, True, None, 20, 1 << 20, 10)
    assert page and not cut, "the filter matched nothing: the comparison above would prove nothing"
    # ... and the form ListJobLogs asks, with a byte budget (a small one: the lines that fit, and one more)
    budgeted = cluster.sized_page(job, where, True, None, 20, 100, 10)
    assert budgeted == single.sized_page(job, where, True, None, 20, 100, 10)
    assert budgeted[0] == page[: len(budgeted[0])] and 1 <= len(budgeted[0]) < len(page) and budgeted[1]
    jobs = [JobRef(**log.ids) for log in logs.jobs]
    assert cluster.landed_since(jobs, 0, 10) == single.landed_since(jobs, 0, 10)
    assert cluster.ended(jobs, 10)[1] == single.ended(jobs, 10)[1]
    assert cluster.tail_state(job, 10) == single.tail_state(job, 10) == (True, False, None)
    assert cluster.job_exists(job, 10) == single.job_exists(job, 10) is True
    for name in LOG_TABLES:
        execute(analytics_db, f"DROP VIEW analytics.{name}_all")
    with pytest.raises(Exception, match="job_log_events_all"):
        cluster.sized_page(job, where, True, None, 20, 1 << 20, 10)
