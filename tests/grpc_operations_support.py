"""The shared set-up of the `analytics grpc` operations suites: a log folder, a small data set, and
the calls both use."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from analytics_proto import analytics_pb2 as pb
from tests import datasets
from tests.intake import deliver


@pytest.fixture(scope="module")
def logs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("grpc-operations")


@pytest.fixture(scope="module")
def small(analytics_db):
    dataset = datasets.generate(seed=51, users=3, workflows_per_user=2)
    deliver(analytics_db, dataset.messages)
    return dataset


def user_totals(stub, user: str, **kwargs) -> tuple:
    response = stub.GetUserAnalytics(pb.GetUserAnalyticsRequest(user_id=user), timeout=30, **kwargs)
    return (
        response.total_workflows,
        response.total_jobs,
        response.total_joblogs,
        response.total_job_execution_duration,
    )


def rpc_error(call, *args, **kwargs) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(*args, **kwargs)
    return caught.value
