"""GetStorageStats and the storage_* views it reads, and who may call the job-log RPCs with tokens."""

from __future__ import annotations

import datetime as dt

import grpc
import pytest

from analytics_proto import analytics_pb2 as pb
from tests import log_datasets
from tests.grpc_server import start_grpc
from tests.intake import deliver, execute, query
from tests.log_datasets import JobLog

OWN_TOKEN = "own-logs-token-0123456789"
READ_ALL_TOKEN = "read-all-token-0123456789"


@pytest.fixture(scope="module")
def logs(analytics_db):
    dataset = log_datasets.generate_logs(seed=91, users=2, jobs_per_user=2, lines=(5, 20))
    deliver(analytics_db, dataset.messages)
    return dataset


@pytest.fixture(scope="module")
def service(analytics_db, tmp_path_factory, logs):
    server = start_grpc(
        tmp_path_factory.mktemp("grpc-storage"),
        "--clickhouse-url",
        analytics_db.url,
        env={"ANALYTICS_GRPC_TOKENS": f"{OWN_TOKEN}={logs.jobs[0].user_id},{READ_ALL_TOKEN}=*"},
    )
    yield server
    assert server.stop() == 0, server.log()


@pytest.fixture(scope="module")
def stub(service):
    with service.channel() as channel:
        yield service.stub(channel)


def bearer(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


def stats(stub) -> pb.GetStorageStatsResponse:
    return stub.GetStorageStats(pb.GetStorageStatsRequest(), timeout=30, metadata=bearer(READ_ALL_TOKEN))


def millis(text: str) -> str:
    """ClickHouse's '2026-03-02 10:00:00.123' as the RFC 3339 the service answers with."""
    return text.replace(" ", "T") + "Z"


def test_tables_report_what_system_parts_holds(stub, analytics_db):
    # No merge may change job_log_events' parts between the answer and the read it is compared with:
    # the lines just delivered (the logs fixture, other tests') are merged in the background.
    execute(analytics_db, "SYSTEM STOP MERGES analytics.job_log_events")
    try:
        answer = {table.table: table for table in stats(stub).tables}
        parts = {
            row["table"]: row
            for row in query(
                analytics_db,
                """SELECT table, sum(rows) AS rows, count() AS parts, sum(bytes_on_disk) AS bytes,
                          sum(data_compressed_bytes) AS compressed, sum(data_uncompressed_bytes) AS uncompressed
                   FROM system.parts WHERE database = 'analytics' AND active GROUP BY table""",
            )
        }
    finally:
        execute(analytics_db, "SYSTEM START MERGES analytics.job_log_events")
    lines = answer["job_log_events"]
    held = parts["job_log_events"]
    assert (lines.rows, lines.parts, lines.bytes_on_disk) == (int(held["rows"]), int(held["parts"]), int(held["bytes"]))
    assert lines.compression_ratio == pytest.approx(int(held["uncompressed"]) / int(held["compressed"]))
    assert lines.engine == "ReplacingMergeTree"
    assert (
        lines.ttl
        == "toDateTime(least(event_time + toIntervalHour(720), toDateTime64('2106-02-07 06:28:15', 3, 'UTC')))"
    )
    assert answer["workflow_totals"].ttl == ""
    # every MergeTree table, also empty ones, and the first-seen gate's RocksDB; no landing table
    assert set(parts) <= set(answer)
    assert answer["seen_keys"].engine == "EmbeddedRocksDB" and answer["seen_keys"].rows > 0
    assert not any(name.endswith("_queue") for name in answer)


def test_topics_report_event_times_and_dead_letters(stub, analytics_db, logs):
    received = dt.datetime.now(dt.UTC).replace(microsecond=0)
    execute(
        analytics_db,
        f"""INSERT INTO analytics.dead_letters (topic, partition, offset, raw_message, error, received_at)
            VALUES ('jobs', 0, 987654321, '{{not json', 'Cannot parse', '{received:%Y-%m-%d %H:%M:%S}')""",
    )
    topics = {topic.topic: topic for topic in stats(stub).topics}
    assert set(topics) >= {"workflows", "jobs", "job_logs", "analytics", "telemetry"}
    [held] = query(
        analytics_db,
        """SELECT count() AS n, toString(min(event_time)) AS oldest, toString(max(event_time)) AS newest
           FROM analytics.job_log_events""",
    )
    job_logs = topics["job_logs"]
    assert (job_logs.raw_table, job_logs.events) == ("job_log_events", int(held["n"]))
    assert (job_logs.oldest_event_time, job_logs.newest_event_time) == (millis(held["oldest"]), millis(held["newest"]))
    newest_line = max(line.time for job in logs.jobs for line in job.lines)
    assert job_logs.newest_event_time >= log_datasets.iso(newest_line)
    [dead] = query(analytics_db, "SELECT count() AS n FROM analytics.dead_letters FINAL WHERE topic = 'jobs'")
    assert topics["jobs"].dead_letters == int(dead["n"]) >= 1
    assert topics["jobs"].last_dead_letter_time >= received.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    for topic in topics.values():
        assert (topic.dead_letters == 0) == (topic.last_dead_letter_time == ""), topic.topic
        assert (topic.events == 0) == (topic.oldest_event_time == "" == topic.newest_event_time), topic.topic


def test_the_log_retention_in_force_and_audit_mode(stub, analytics_db):
    retention = stats(stub).log_retention
    assert (retention.audit_mode, retention.log_retention_hours) == (False, 720)
    try:
        execute(analytics_db, "ALTER TABLE analytics.job_log_events REMOVE TTL")  # what audit mode does
        retention = stats(stub).log_retention
        assert (retention.audit_mode, retention.log_retention_hours, retention.ttl) == (True, 0, "")
        execute(
            analytics_db,
            "ALTER TABLE analytics.job_log_events MODIFY TTL toDateTime(event_time) + INTERVAL 48 HOUR"
            " SETTINGS materialize_ttl_after_modify = 0",
        )
        assert stats(stub).log_retention.log_retention_hours == 48
    finally:
        execute(
            analytics_db,
            "ALTER TABLE analytics.job_log_events MODIFY TTL toDateTime(event_time) + INTERVAL 720 HOUR"
            " SETTINGS materialize_ttl_after_modify = 0",
        )
    [view] = query(analytics_db, "SELECT * FROM analytics.storage_log_retention")
    assert (view["audit_mode"], view["log_retention_hours"]) == (False, 720)


# -- tokens ---------------------------------------------------------------------------------------


def test_storage_figures_need_a_token_that_reads_every_user(stub):
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetStorageStats(pb.GetStorageStatsRequest(), timeout=30, metadata=bearer(OWN_TOKEN))
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "needs a token that reads all (*)" in caught.value.details()
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetStorageStats(pb.GetStorageStatsRequest(), timeout=30)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert stats(stub).tables


def test_a_token_lists_and_tails_its_own_users_logs_only(stub, logs):
    own, other = logs.jobs[0], logs.jobs[-1]
    assert own.user_id != other.user_id
    listed = stub.ListJobLogs(pb.ListJobLogsRequest(**own.ids), timeout=30, metadata=bearer(OWN_TOKEN))
    assert len(listed.lines) == len(own.lines)
    for job in (other, JobLog(own.user_id.upper(), own.workflow_id, own.job_id)):
        with pytest.raises(grpc.RpcError) as caught:
            stub.ListJobLogs(pb.ListJobLogsRequest(**job.ids), timeout=30, metadata=bearer(OWN_TOKEN))
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.RpcError) as caught:
            list(stub.StreamJobLogs(pb.StreamJobLogsRequest(**job.ids), timeout=30, metadata=bearer(OWN_TOKEN)))
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.RpcError) as caught:
        list(stub.StreamJobLogs(pb.StreamJobLogsRequest(**own.ids), timeout=30))
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    listed = stub.ListJobLogs(pb.ListJobLogsRequest(**other.ids), timeout=30, metadata=bearer(READ_ALL_TOKEN))
    assert len(listed.lines) == len(other.lines)
