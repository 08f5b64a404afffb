"""The shared set-up of the gRPC service suites: a data set delivered once per suite, an `analytics
grpc` over HTTP to the embedded ClickHouse, a stub on it, and the checks both suites use."""

from __future__ import annotations

import datetime as dt

import grpc
import pytest

from analytics_proto import analytics_pb2 as pb
from tests import datasets
from tests.embedded_server import free_port
from tests.grpc_expected import Counters, DailyModel
from tests.grpc_server import start_grpc
from tests.intake import deliver

BATCH_SIZE = 200


def load(analytics_db, written_otherwise: bool = False) -> tuple[datasets.Dataset, DailyModel]:
    """A data set delivered once (``written_otherwise``: as other producers may write it, same
    metrics); the legacy events count on the day of delivery (UTC)."""
    for _ in range(2):  # a delivery across midnight UTC would split the legacy events' day
        dataset = datasets.generate(seed=41, users=5, workflows_per_user=5, jobs_per_workflow=7)
        if written_otherwise:
            dataset = datasets.odd_but_valid(dataset, seed=41)
        before = dt.datetime.now(dt.UTC).date()
        deliver(analytics_db, dataset.messages, batch_size=BATCH_SIZE)
        if dt.datetime.now(dt.UTC).date() == before:
            return dataset, DailyModel(dataset, BATCH_SIZE, before)
    raise AssertionError("could not deliver within one UTC day")


@pytest.fixture(scope="module")
def loaded(analytics_db):
    return load(analytics_db)


@pytest.fixture(scope="module")
def service(analytics_db, tmp_path_factory):
    metrics_port = free_port()
    server = start_grpc(
        tmp_path_factory.mktemp("grpc"),
        "--clickhouse-url",
        analytics_db.url,
        "--metrics-port",
        str(metrics_port),
    )
    server.extra["metrics_url"] = f"http://127.0.0.1:{metrics_port}/metrics"
    yield server
    assert server.stop() == 0, server.log()


@pytest.fixture(scope="module")
def stub(service):
    with service.channel() as channel:
        yield service.stub(channel)


def error_of(call, request, **kwargs) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(request, timeout=kwargs.pop("timeout", 30), **kwargs)
    return caught.value


def assert_summary(summary: pb.AnalyticsSummary, expected: Counters) -> None:
    assert (
        summary.total_workflows,
        summary.total_jobs,
        summary.total_joblogs,
        summary.total_job_execution_duration,
    ) == (len(expected.workflows), expected.jobs, expected.joblogs, expected.seconds)
    outcomes = summary.outcomes
    assert (outcomes.completed, outcomes.failed, outcomes.cancelled) == (
        expected.completed,
        expected.failed,
        expected.cancelled,
    )
    if expected.success_rate is None:
        assert not outcomes.HasField("success_rate")
    else:
        assert outcomes.success_rate == pytest.approx(expected.success_rate)
    if expected.percentiles is None:
        assert not summary.HasField("duration_percentiles")
    else:
        got = summary.duration_percentiles
        # t-digests keep Float32 means: equal to the nearest-rank value up to float precision
        assert (got.p50, got.p90, got.p95, got.p99) == pytest.approx(expected.percentiles, rel=1e-6)
