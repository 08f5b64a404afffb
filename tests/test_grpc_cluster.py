"""On a cluster the service reads every shard through the Distributed `<aggregate>_all` tables."""

from __future__ import annotations

import pytest

from server.backends import HttpBackend
from server.queries import Queries, Scope, on_cluster
from tests import datasets
from tests.intake import deliver, execute

AGGREGATES = ("workflow_totals", "workflow_daily", "job_duration_daily")


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
    for name in AGGREGATES:
        execute(analytics_db, f"CREATE VIEW analytics.{name}_all AS SELECT * FROM analytics.{name}")
    yield
    for name in AGGREGATES:
        execute(analytics_db, f"DROP VIEW IF EXISTS analytics.{name}_all")


def test_cluster_queries_read_the_distributed_tables_and_answer_the_same(analytics_db, stand_in_distributed_tables):
    dataset = datasets.generate(seed=51, users=2)
    deliver(analytics_db, dataset.messages)
    backend = HttpBackend(analytics_db.url)
    single, cluster = Queries(backend), Queries(backend, cluster=True)
    user = dataset.expected.users[0]
    workflow = sorted(w for u, w in dataset.expected.workflows if u == user)[0]
    assert cluster.user_totals(user, 10) == single.user_totals(user, 10)
    assert cluster.workflow_totals(user, workflow, 10) == single.workflow_totals(user, workflow, 10)
    assert cluster.summary(Scope(user, kind="CONTAINER"), 10) == single.summary(Scope(user, kind="CONTAINER"), 10)
    assert cluster.time_series(Scope(user), "week", 10) == single.time_series(Scope(user), "week", 10)
    # Without the stand-ins the cluster queries fail: they really read the _all tables.
    execute(analytics_db, "DROP VIEW analytics.workflow_totals_all")
    with pytest.raises(Exception, match="workflow_totals_all"):
        cluster.user_totals(user, 10)
