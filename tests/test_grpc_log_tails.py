"""StreamJobLogs: a job's lines so far, then the lines that land, until the job ends or the client goes.

Lines land through the HTTP intake while real gRPC clients tail them from `analytics grpc`.
Nothing here times the service: waits are bounded only so that a broken tail fails the test
instead of hanging it; the benchmark measures the delays.
"""

from __future__ import annotations

import datetime as dt
import queue
import threading
import time
import urllib.request
from collections.abc import Iterator

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from analytics_proto import analytics_pb2 as pb
from server import tail as tail_module
from tests import log_datasets
from tests.embedded_server import free_port
from tests.grpc_server import start_grpc
from tests.intake import execute, post_batch, query
from tests.log_datasets import JobLog, job_event, log_event
from tests.test_grpc_operations import certificates, logs  # noqa: F401 - the TLS fixtures

pytestmark = pytest.mark.long_file(22)  # seconds of a worker, measured: run first (tests/scheduling.py)

MAX_TAILS = 4
WAIT = 60  # seconds a test waits for what must come; only a broken tail takes that long


@pytest.fixture(scope="module")
def service(analytics_db, tmp_path_factory):
    metrics_port = free_port()
    server = start_grpc(
        tmp_path_factory.mktemp("grpc-tails"),
        "--clickhouse-url",
        analytics_db.url,
        "--workers",
        "2",
        "--metrics-port",
        str(metrics_port),
        env={"ANALYTICS_GRPC_MAX_LOG_TAILS": str(MAX_TAILS), "ANALYTICS_GRPC_LOG_TAIL_LINGER": "0.5"},
    )
    server.extra["metrics_url"] = f"http://127.0.0.1:{metrics_port}/metrics"
    yield server
    assert server.stop() == 0, server.log()


@pytest.fixture
def stub(service):
    with service.channel() as channel:
        yield service.stub(channel)


class Job:
    """A job of its own for one test, and the events that land for it."""

    def __init__(self, server, name: str):
        prefix = log_datasets.generate_logs(seed=80, users=0).prefix
        self.log = JobLog(f"{prefix}-u", f"{prefix}-w", f"{prefix}-{name}")
        self.server = server
        self.moment = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)
        self.land_job("created")

    def land_job(self, name: str) -> None:
        self.moment += dt.timedelta(seconds=1)
        event = job_event(self.log, name, self.moment, f"{self.log.job_id}-{name}")
        assert post_batch(self.server, "jobs", [event]).status == 200

    def land_lines(self, sequences, stream: str = "stdout", resend: int = 0) -> None:
        events = []
        for n in sequences:
            self.moment += dt.timedelta(milliseconds=10)
            events.append(
                log_event(
                    self.log, f"{self.log.job_id}-{n}", self.moment, stream=stream, sequence=n, message=f"line {n}"
                )
            )
        assert post_batch(self.server, "job_logs", events + events[:resend]).status == 200

    def request(self, **fields) -> pb.StreamJobLogsRequest:
        return pb.StreamJobLogsRequest(**self.log.ids, **fields)


class Tail:
    """A client reading a stream in a thread of its own."""

    def __init__(self, call: Iterator):
        self.call = call
        self.lines: queue.Queue = queue.Queue()
        self.error: grpc.RpcError | None = None
        self.done = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for line in self.call:
                self.lines.put(line)
        except grpc.RpcError as error:
            self.error = error
        finally:
            self.done.set()

    def take(self, count: int) -> list[pb.LogLine]:
        return [self.lines.get(timeout=WAIT) for _ in range(count)]

    def take_until_ended(self, count: int) -> list[pb.LogLine]:
        """Up to ``count`` lines: fewer when the stream ends first."""
        taken: list[pb.LogLine] = []
        deadline = time.monotonic() + WAIT
        while len(taken) < count and time.monotonic() < deadline:
            try:
                taken.append(self.lines.get(timeout=0.1))
            except queue.Empty:
                if self.done.is_set() and self.lines.empty():
                    break
        return taken

    def finish(self) -> list[pb.LogLine]:
        """The rest of the stream once it has ended."""
        assert self.done.wait(WAIT), "the tail did not end"
        rest = []
        while not self.lines.empty():
            rest.append(self.lines.get_nowait())
        return rest


def metrics(service) -> dict[tuple, float]:
    """Every sample of the service's /metrics as {(name, labels...): value}."""
    with urllib.request.urlopen(service.extra["metrics_url"], timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, *sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(service, name: str, **labels) -> float:
    return metrics(service).get((name, *sorted(labels.items())), 0.0)


def wait_for(condition, what: str) -> None:
    done = threading.Event()
    for _ in range(WAIT * 10):
        if condition():
            return
        done.wait(0.1)
    raise AssertionError(f"waited {WAIT}s for {what}")


# -- following a job ----------------------------------------------------------------------------


def test_a_tail_sends_the_history_then_each_line_that_lands_once_and_ends_with_the_job(stub, analytics_db):
    job = Job(analytics_db, "follow")
    job.land_lines([4, 0, 3, 1, 2], resend=2)  # out of order, two sent twice
    tail = Tail(stub.StreamJobLogs(job.request(), timeout=300))
    assert [line.sequence for line in tail.take(5)] == [0, 1, 2, 3, 4]

    job.land_lines([5, 6], resend=1)
    job.land_lines([7], stream="stderr")
    job.land_lines([5])  # a late duplicate of a line already tailed
    assert sorted(line.sequence for line in tail.take(3)) == [5, 6, 7]
    job.land_lines([9, 8])
    job.land_job("completed")
    rest = tail.take(2) + tail.finish()
    assert tail.error is None  # ended by the job, with OK
    assert [line.sequence for line in rest] == [8, 9]  # a poll's lines come in sequence order
    assert all(line.message == f"line {line.sequence}" for line in rest)


def test_a_burst_of_more_lines_than_a_client_may_fall_behind_reaches_a_client_that_keeps_up(stub, analytics_db):
    """One insert of more lines than the cut-off (a job dumping its output, the bridge catching up)
    is handed to the tail by one poll; the client has taken everything before it, so it has fallen
    behind by nothing. It was cut off as too slow (RESOURCE_EXHAUSTED) before it could read a line."""
    job = Job(analytics_db, "burst")
    job.land_lines([0])
    tail = Tail(stub.StreamJobLogs(job.request(), timeout=300))
    assert [line.sequence for line in tail.take(1)] == [0]
    burst = range(1, tail_module.MAX_BUFFERED_LINES + 2)
    events = [log_event(job.log, f"{job.log.job_id}-{n}", job.moment, sequence=n, message=f"line {n}") for n in burst]
    assert post_batch(analytics_db, "job_logs", events).status == 200
    got = [line.sequence for line in tail.take_until_ended(len(burst))]
    assert tail.error is None, tail.error.details()
    assert sorted(got) == list(burst)  # each line once
    job.land_job("completed")
    assert tail.finish() == []
    assert tail.error is None


def test_a_line_that_two_racing_inserts_both_stored_is_tailed_once(stub, analytics_db):
    """Two inserts of one line that race past the first-seen gate (two senders, two Kafka consumers
    on a ClickHouse server) leave two rows of it until a merge: a poll read both, and the tail sent
    the line twice."""
    job = Job(analytics_db, "raced")
    job.land_lines([0])
    tail = Tail(stub.StreamJobLogs(job.request(), timeout=300))
    assert [line.sequence for line in tail.take(1)] == [0]
    # Line 1, stored twice by one insert (so one poll reads both rows), as the race leaves it.
    line_0 = f"SELECT * FROM analytics.job_log_events WHERE job_id = '{job.log.job_id}' AND sequence = 0"
    key = f"{job.log.job_id}-1"
    raced = f"""SELECT * REPLACE (now64(3, 'UTC') AS ingested_at, 1 AS sequence, 'line 1' AS message,
                    '{key}' AS event_id, MD5('{key}') AS dedup_key) FROM ({line_0})"""
    execute(analytics_db, f"INSERT INTO analytics.job_log_events {raced} UNION ALL {raced}")
    job.land_lines([2])
    job.land_job("completed")
    rest = tail.take(2) + tail.finish()
    assert tail.error is None
    assert [line.sequence for line in rest] == [1, 2]
    # The race counted line 1 twice in job_log_totals. A rebuild of the day would correct that with
    # a delta row; this one, minus one line and entry (the sums wrap), keeps the shared database's
    # totals agreeing with its raw history, which test_job_log_schema's dbt test checks.
    log = job.log
    counted = f"SELECT sum(lines) AS n FROM analytics.job_log_totals WHERE job_id = '{log.job_id}'"
    assert [int(row["n"]) for row in query(analytics_db, counted)] == [4]
    execute(
        analytics_db,
        "INSERT INTO analytics.job_log_totals (user_id, workflow_id, job_id, lines, entries)"
        f" VALUES ('{log.user_id}', '{log.workflow_id}', '{log.job_id}', {2**64 - 1}, {2**64 - 1})",
    )


def test_a_tail_of_an_ended_job_sends_its_lines_and_ends(stub, analytics_db):
    job = Job(analytics_db, "ended")
    job.land_lines(range(12), resend=3)
    job.land_job("failed")
    tail = Tail(stub.StreamJobLogs(job.request(), timeout=300))
    lines = tail.finish()
    assert tail.error is None
    assert [line.sequence for line in lines] == list(range(12))


def test_a_tail_opened_just_after_its_job_ended_still_gets_the_lines_of_the_linger(analytics_db, tmp_path):
    """As a tail opened before the end does: log shippers lag behind the scheduler."""
    service = start_grpc(tmp_path, "--clickhouse-url", analytics_db.url, env={"ANALYTICS_GRPC_LOG_TAIL_LINGER": "30"})
    try:
        with service.channel() as channel:
            job = Job(analytics_db, "late")
            job.land_lines([0, 1])
            job.land_job("completed")
            tail = Tail(service.stub(channel).StreamJobLogs(job.request(), timeout=300))
            assert [line.sequence for line in tail.take(2)] == [0, 1]
            job.land_lines([2])  # the last line, landing after the job's end
            assert [line.sequence for line in tail.take(1)] == [2]
            assert not tail.done.is_set()
            tail.call.cancel()
    finally:
        assert service.stop() == 0


def test_a_tail_follows_one_stream(stub, analytics_db):
    job = Job(analytics_db, "stream")
    job.land_lines([0, 1], stream="stdout")
    job.land_lines([2], stream="stderr")
    tail = Tail(stub.StreamJobLogs(job.request(stream=pb.LOG_STREAM_STDERR), timeout=300))
    assert [line.sequence for line in tail.take(1)] == [2]
    job.land_lines([3], stream="stdout")
    job.land_lines([4], stream="stderr")
    job.land_job("cancelled")
    lines = tail.take(1) + tail.finish()
    assert [(line.sequence, line.stream) for line in lines] == [(4, "stderr")]


def test_an_unknown_or_another_users_job_is_not_found(stub, analytics_db):
    job = Job(analytics_db, "known")
    for ids in ({**job.log.ids, "job_id": job.log.job_id + "-x"}, {**job.log.ids, "user_id": "someone-else"}):
        with pytest.raises(grpc.RpcError) as caught:
            list(stub.StreamJobLogs(pb.StreamJobLogsRequest(**ids), timeout=30))
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as caught:
        list(stub.StreamJobLogs(job.request(stream=5), timeout=30))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


# -- many tails ---------------------------------------------------------------------------------


def test_tails_share_one_poll_whatever_their_number(stub, service, analytics_db):
    def counters() -> tuple[float, float, float]:
        """(polls, their ClickHouse queries, jobs they covered), read while no tail runs."""
        wait_for(lambda: value(service, "analytics_grpc_log_tails") == 0, "no tail to run")
        return (
            value(service, "analytics_grpc_log_tail_polls_total"),
            value(service, "analytics_clickhouse_query_seconds_count", query="job_log_tail", outcome="ok")
            + value(service, "analytics_clickhouse_query_seconds_count", query="job_log_tail_keys", outcome="ok"),
            value(service, "analytics_grpc_log_tail_polled_jobs_total"),
        )

    jobs = [Job(analytics_db, f"shared-{n}") for n in range(2)]
    for job in jobs:
        job.land_lines([0])
    before = counters()
    tails = [Tail(stub.StreamJobLogs(jobs[n % 2].request(), timeout=300)) for n in range(MAX_TAILS)]
    for tail in tails:
        tail.take(1)
    jobs[0].land_lines([1])
    for tail in tails[::2]:
        assert tail.take(1)[0].sequence == 1
    polls = before[0]
    wait_for(lambda: value(service, "analytics_grpc_log_tail_polls_total") >= polls + 3, "three more polls")
    for job in jobs:
        job.land_job("completed")
    for tail in tails:
        tail.finish()
        assert tail.error is None
    polls, queries, polled_jobs = (after - earlier for after, earlier in zip(counters(), before, strict=True))
    # four tails of two jobs: each poll is one query for lines (or keys) about two jobs, not four
    assert polls >= 3
    assert queries == polls
    assert polled_jobs <= 2 * polls


def test_tails_have_threads_of_their_own_up_to_their_limit(stub, service, analytics_db):
    """Two workers, four tails: the tails never take the workers the other calls need."""
    job = Job(analytics_db, "limit")
    job.land_lines([0])
    tails = [Tail(stub.StreamJobLogs(job.request(), timeout=300)) for _ in range(MAX_TAILS)]
    for tail in tails:
        tail.take(1)
    with pytest.raises(grpc.RpcError) as caught:
        list(stub.StreamJobLogs(job.request(), timeout=30))
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "ANALYTICS_GRPC_MAX_LOG_TAILS" in caught.value.details()
    # unary calls still have their workers, several at once
    calls = [stub.ListJobLogs.future(pb.ListJobLogsRequest(**job.log.ids), timeout=30) for _ in range(6)] + [
        stub.GetStorageStats.future(pb.GetStorageStatsRequest(), timeout=30)
    ]
    assert [len(call.result().lines) for call in calls[:-1]] == [1] * 6
    assert calls[-1].result().tables
    job.land_job("completed")
    for tail in tails:
        tail.finish()
        assert tail.error is None
    # the slots are free again
    wait_for(lambda: value(service, "analytics_grpc_log_tails") == 0, "the tails to leave")
    assert [line.sequence for line in stub.StreamJobLogs(job.request(), timeout=30)] == [0]


# -- the client going away ----------------------------------------------------------------------


def test_a_cancelled_tail_leaves_at_once_and_counts_as_cancelled(stub, service, analytics_db):
    job = Job(analytics_db, "cancel")
    job.land_lines([0])
    before = value(service, "analytics_grpc_responses_total", grpc_service="analytics.AnalyticsService",
                   grpc_method="StreamJobLogs", grpc_code="CANCELLED")  # fmt: skip
    tail = Tail(stub.StreamJobLogs(job.request(), timeout=300))
    tail.take(1)
    wait_for(lambda: value(service, "analytics_grpc_log_tails") >= 1, "the tail to subscribe")
    tail.call.cancel()
    tail.finish()
    assert tail.error.code() == grpc.StatusCode.CANCELLED
    wait_for(lambda: value(service, "analytics_grpc_log_tails") == 0, "the cancelled tail to leave")
    wait_for(
        lambda: (
            value(
                service,
                "analytics_grpc_responses_total",
                grpc_service="analytics.AnalyticsService",
                grpc_method="StreamJobLogs",
                grpc_code="CANCELLED",
            )
            == before + 1
        ),
        "the metrics to count the tail as cancelled",
    )


def test_a_tail_past_its_deadline_ends_with_deadline_exceeded(stub, service, analytics_db):
    job = Job(analytics_db, "deadline")
    job.land_lines([0, 1])
    tail = Tail(stub.StreamJobLogs(job.request(), timeout=2))
    assert [line.sequence for line in tail.take(2)] == [0, 1]
    tail.finish()
    assert tail.error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    wait_for(lambda: value(service, "analytics_grpc_log_tails") == 0, "the expired tail to leave")
    wait_for(
        lambda: (
            value(
                service,
                "analytics_grpc_responses_total",
                grpc_service="analytics.AnalyticsService",
                grpc_method="StreamJobLogs",
                grpc_code="DEADLINE_EXCEEDED",
            )
            >= 1
        ),
        "the metrics to count the deadline",
    )


def test_stopping_the_server_ends_its_tails_at_once(analytics_db, tmp_path):
    """SIGTERM does not wait out the drain for tails: they end UNAVAILABLE, to be called again."""
    server = start_grpc(tmp_path, "--clickhouse-url", analytics_db.url, env={"ANALYTICS_GRPC_DRAIN_SECONDS": "120"})
    job = Job(analytics_db, "stop")
    job.land_lines([0])
    try:
        with server.channel() as channel:
            tail = Tail(server.stub(channel).StreamJobLogs(job.request(), timeout=300))
            tail.take(1)
            # stop() kills the server if it has not exited in 30 s, far less than the drain allows
            assert server.stop(timeout=30) == 0, server.log()
            tail.finish()
            assert tail.error.code() == grpc.StatusCode.UNAVAILABLE
            assert "call again" in tail.error.details()
    finally:
        server.stop()


def test_a_tail_over_tls(analytics_db, logs, certificates):  # noqa: F811 - the imported fixtures
    trusted = grpc.ssl_channel_credentials(root_certificates=(certificates / "ca.pem").read_bytes())
    tls = ["--tls-cert", str(certificates / "server.pem"), "--tls-key", str(certificates / "server.key")]
    server = start_grpc(logs, "--clickhouse-url", analytics_db.url, *tls, credentials=trusted)
    job = Job(analytics_db, "tls")
    job.land_lines([0])
    try:
        with server.channel() as channel:
            tail = Tail(server.stub(channel).StreamJobLogs(job.request(), timeout=120))
            assert [line.sequence for line in tail.take(1)] == [0]
            job.land_lines([1])
            assert [line.sequence for line in tail.take(1)] == [1]
            job.land_job("completed")
            assert tail.finish() == []
            assert tail.error is None
    finally:
        assert server.stop() == 0
