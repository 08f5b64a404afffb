"""The AnalyticsService as the scheduler's Go code calls it: grpc-go with stubs generated from
proto/analytics/analytics.proto, connected as the scheduler's client package connects (round
robin over what `localhost` resolves to, every request gzip-compressed).

The program (tests/clients/grpc-go) makes the documentation's calls and prints what it got; the
test compares that with the numbers computed from the events sent (`analytics grpc` over HTTP to
the embedded ClickHouse, the data set of the other gRPC suites). The documentation's own Go code
(tests/clients/scheduler-go) is built against stubs generated with no flag naming their import
path, as the scheduler generates them, and run the same way.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from tests import client_tools
from tests.grpc_service_support import loaded, service  # noqa: F401 - fixtures
from tests.test_clients import _tool

pytestmark = pytest.mark.long_file(15)  # seconds of a worker, measured: run first (tests/scheduling.py)


# The status codes of the program's wrong calls, as grpc-go names them.
EXPECTED_CODES = {
    "unknown_user": "NotFound",
    "empty_user": "InvalidArgument",
    "malformed_user": "InvalidArgument",
    "other_users_workflow": "NotFound",
    "empty_workflow": "InvalidArgument",
    "impossible_day": "InvalidArgument",
}


def go_client(service, user: str, other_user: str, workflows: list[str]) -> dict:
    binary = _tool(client_tools.grpc_go_client)
    command = [str(binary), "-addr", f"localhost:{service.port}", "-user", user, "-other-user", other_user]
    for workflow in workflows:
        command += ["-workflow", workflow]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    try:
        report = json.loads(result.stdout.strip().rsplit("\n", 1)[-1])
    except ValueError:
        pytest.fail(f"no JSON report:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    assert result.returncode == 0 and not report.get("error"), report.get("error") or result.stderr[-3000:]
    return report


def test_the_scheduler_go_client_reads_every_call_and_error_code(service, loaded):
    dataset, model = loaded
    user, other = model.users[0], model.users[1]
    own = model.workflows(user)
    foreign = model.workflows(other)[0]
    report = go_client(service, user, other, [*own[:3], foreign])

    assert report["health"] == "SERVING"
    workflows, jobs, joblogs, seconds = dataset.expected.user(user)
    got = (report["total_workflows"], report["total_jobs"], report["total_joblogs"])
    assert (*got, report["total_job_execution_duration"]) == (workflows, jobs, joblogs, seconds)

    for compared, workflow in zip(report["compared"][:3], own[:3], strict=True):
        assert compared["workflow_id"] == workflow and "error" not in compared
        got = (compared["total_jobs"], compared["total_joblogs"], compared["total_job_execution_duration"])
        assert got == dataset.expected.workflow(user, workflow), workflow
    # Another user's workflow is not found for this one: the comparison logs it and goes on.
    assert report["compared"][3] == {
        "workflow_id": foreign,
        "total_jobs": 0,
        "total_joblogs": 0,
        "total_job_execution_duration": 0,
        "error": "NotFound",
    }

    # Two a page, most jobs first, each workflow once.
    listed = report["listed"]
    assert sorted(listed) == own and report["pages"] == (len(own) + 1) // 2
    listed_jobs = [model.total(user, workflow).jobs for workflow in listed]
    assert listed_jobs == sorted(listed_jobs, reverse=True)

    total = model.total(user)
    assert report["details"] == {
        "total_workflows": len(total.workflows),
        "total_jobs": total.jobs,
        "total_joblogs": total.joblogs,
        "total_job_execution_duration": total.seconds,
        "completed": total.completed,
        "failed": total.failed,
        "cancelled": total.cancelled,
    }
    # Go's zero time as the start of a range is an open start, not an error.
    assert report["details_since_zero"] == {
        "total_workflows": len(total.workflows),
        "total_jobs": total.jobs,
        "total_joblogs": total.joblogs,
    }
    assert report["codes"] == EXPECTED_CODES


def test_the_documentations_go_code_builds_on_stubs_generated_without_flags_and_reads_the_numbers(service, loaded):
    """The examples import the stubs as pb "github.com/hitesh22rana/chronoverse/pkg/proto/go/analytics"
    (package analytics): protoc-gen-go refused a proto without go_package ("unable to determine Go
    import path"), so the scheduler could not generate its client from the proto at all."""
    dataset, model = loaded
    user = model.users[0]
    workflow = model.workflows(user)[0]
    binary = _tool(client_tools.scheduler_go_client)
    command = [str(binary), "-addr", f"localhost:{service.port}", "-user", user, "-workflow", workflow]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    workflows, jobs, joblogs, seconds = dataset.expected.user(user)
    workflow_jobs, _, workflow_seconds = dataset.expected.workflow(user, workflow)
    # log.Printf writes to stderr, fmt.Printf to stdout.
    assert f"User has {workflows} workflows and {jobs} jobs" in result.stderr
    assert f"Workflow {workflow} has {workflow_jobs} jobs" in result.stderr
    average = workflow_seconds / workflow_jobs if workflow_jobs else 0
    assert result.stdout.splitlines()[:4] == [
        f"dashboard: workflows={workflows} jobs={jobs} logs={joblogs} execution_time={seconds}",
        f"{workflow}: {workflow_jobs} jobs, {average:.2f}s avg duration",
        f"Total Execution Time: {seconds} seconds",
        f"Estimated Cost: ${seconds * 0.0001:.4f}",
    ]
