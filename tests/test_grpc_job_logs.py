"""ListJobLogs over generated logs: every line once by page in both orders, every filter, expiry.

Log events go in through the HTTP intake (out of order, some twice, count-only events among
them); `analytics grpc` reads the embedded ClickHouse over HTTP; the expected lines are
computed from the events here.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator

import grpc
import pytest

from analytics_proto import analytics_pb2 as pb
from analytics_proto import analytics_pb2_grpc as pb_grpc
from core.clickhouse.backend import HttpBackend
from core.settings.grpc import GrpcSettings
from server import log_service
from server import logs as server_logs
from server.service import AnalyticsServer
from tests import log_datasets
from tests.datasets import iso
from tests.embedded_server import free_port
from tests.grpc_server import call_by_reflection, start_grpc
from tests.intake import HTTP, deliver, execute, post_batch, query
from tests.log_datasets import RARE, JobLog, Line

pytestmark = pytest.mark.long_file(36)  # seconds of a worker, measured: run first (tests/scheduling.py)

STREAMS = {pb.LOG_STREAM_ALL: None, pb.LOG_STREAM_STDOUT: "stdout", pb.LOG_STREAM_STDERR: "stderr"}


@pytest.fixture(scope="module")
def logs(analytics_db) -> log_datasets.LogSet:
    dataset = log_datasets.generate_logs(seed=71)
    deliver(analytics_db, dataset.messages, batch_size=150)
    return dataset


@pytest.fixture(scope="module")
def service(analytics_db, tmp_path_factory):
    server = start_grpc(tmp_path_factory.mktemp("grpc-logs"), "--clickhouse-url", analytics_db.url)
    yield server
    assert server.stop() == 0, server.log()


@pytest.fixture(scope="module")
def stub(service):
    with service.channel() as channel:
        yield service.stub(channel)


def request_for(job: JobLog, **fields) -> pb.ListJobLogsRequest:
    return pb.ListJobLogsRequest(**job.ids, **fields)


def seen(line: pb.LogLine) -> tuple:
    return (line.event_id, line.timestamp, line.stream, line.sequence, line.message)


def expected(line: Line) -> tuple:
    return (line.event_id, line.timestamp, line.stream, line.sequence, line.message)


def every_page(stub, request: pb.ListJobLogsRequest) -> tuple[list[tuple], int]:
    """All lines of a listing, page after page, and the number of pages."""
    lines, pages = [], 0
    while True:
        response = stub.ListJobLogs(request, timeout=30)
        pages += 1
        lines += [seen(line) for line in response.lines]
        assert not response.lines_expired
        if not response.next_page_token:
            return lines, pages
        assert len(response.lines) == (request.page_size or 500)
        request.page_token = response.next_page_token


def rpc_error(call, request) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(request, timeout=30)
    return caught.value


# -- every line once, in order ------------------------------------------------------------------


@pytest.mark.parametrize("page_size", [0, 1, 7, 64])
def test_pages_cover_every_line_once_in_both_orders(stub, logs, page_size):
    for job in logs.jobs:
        if page_size == 1 and len(job.lines) > 60:
            continue  # one line a page: the small jobs show it as well as the large ones
        want = [expected(line) for line in job.lines]
        ascending, pages = every_page(stub, request_for(job, page_size=page_size))
        assert ascending == want, job.job_id
        assert pages == -(-len(want) // (page_size or 500)), job.job_id
        descending, _ = every_page(stub, request_for(job, page_size=page_size, order=pb.LOG_ORDER_DESC))
        assert descending == want[::-1], job.job_id


def test_duplicates_appear_once_and_out_of_order_lines_in_sequence_order(stub, logs):
    resent = [message for message in logs.messages["job_logs"] if "message" in message]
    assert len(resent) > len({message["event_id"] for message in resent})  # the data set did resend lines
    numbered = next(job for job in logs.jobs if job.lines[-1].sequence > 0)
    delivery = [m["sequence"] for m in logs.messages["job_logs"] if m["job_id"] == numbered.job_id and "sequence" in m]
    assert delivery != sorted(delivery)  # ... and out of order
    lines = stub.ListJobLogs(request_for(numbered, page_size=5000), timeout=30).lines
    assert [line.sequence for line in lines] == list(range(len(numbered.lines)))


def test_a_job_without_sequences_reads_in_time_order(stub, logs):
    unnumbered = next(job for job in logs.jobs if job.lines[-1].sequence == 0)
    lines = stub.ListJobLogs(request_for(unnumbered, page_size=5000), timeout=30).lines
    assert [line.timestamp for line in lines] == sorted(line.timestamp for line in unnumbered.lines)
    assert [line.message for line in lines] == [line.message for line in unnumbered.lines]


def test_lines_without_a_sequence_count_as_sequence_0(stub, analytics_db):
    prefix = log_datasets.generate_logs(seed=75, users=0).prefix
    job = JobLog(f"{prefix}-u", f"{prefix}-w", f"{prefix}-j")
    moment = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    events = [
        log_datasets.log_event(job, f"{prefix}-a", moment + dt.timedelta(seconds=3), sequence=2, message="two"),
        log_datasets.log_event(job, f"{prefix}-b", moment + dt.timedelta(seconds=2), message="late, unnumbered"),
        log_datasets.log_event(job, f"{prefix}-c", moment + dt.timedelta(seconds=1), sequence=1, message="one"),
        log_datasets.log_event(job, f"{prefix}-d", moment, message="early, unnumbered"),
        log_datasets.log_event(job, f"{prefix}-e", moment + dt.timedelta(seconds=9), sequence=0, message="zero"),
    ]
    assert post_batch(analytics_db, "job_logs", events).status == 200
    lines = stub.ListJobLogs(request_for(job), timeout=30).lines
    assert [(line.sequence, line.message) for line in lines] == [
        (0, "early, unnumbered"),
        (0, "late, unnumbered"),
        (0, "zero"),
        (1, "one"),
        (2, "two"),
    ]


def test_count_only_events_are_no_lines_but_still_count(stub, logs, analytics_db):
    job = max(logs.jobs, key=lambda job: job.entries - len(job.lines))
    assert job.entries > len(job.lines)
    assert len(every_page(stub, request_for(job, page_size=5000))[0]) == len(job.lines)
    [totals] = query(
        analytics_db,
        f"""SELECT sum(lines) AS lines, sum(entries) AS entries FROM analytics.job_log_totals
            WHERE user_id = '{job.user_id}' AND workflow_id = '{job.workflow_id}' AND job_id = '{job.job_id}'""",
    )
    assert (int(totals["lines"]), int(totals["entries"])) == (len(job.lines), job.entries)


# -- filters ------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", list(STREAMS))
def test_stream_filter(stub, logs, stream):
    for job in logs.jobs:
        want = [expected(line) for line in job.lines if STREAMS[stream] in (None, line.stream)]
        assert every_page(stub, request_for(job, stream=stream, page_size=40))[0] == want, job.job_id


def test_time_range_includes_its_start_and_excludes_its_end(stub, logs):
    job = max(logs.jobs, key=lambda job: len(job.lines))
    first, last = job.lines[len(job.lines) // 4], job.lines[len(job.lines) // 2]
    start, end = first.time, last.time
    for request, want in [
        (request_for(job, start_time=iso(start)), [line for line in job.lines if line.time >= start]),
        (request_for(job, end_time=iso(end)), [line for line in job.lines if line.time < end]),
        (
            request_for(job, start_time=iso(start), end_time=iso(end)),
            [line for line in job.lines if start <= line.time < end],
        ),
        # the same moments with an offset, and with more digits than milliseconds
        (
            request_for(
                job,
                start_time=start.astimezone(dt.timezone(dt.timedelta(hours=5, minutes=30))).isoformat(),
                end_time=end.strftime("%Y-%m-%dT%H:%M:%S.%f") + "999Z",
            ),
            [line for line in job.lines if start <= line.time <= end],
        ),
    ]:
        request.page_size = 25
        assert every_page(stub, request)[0] == [expected(line) for line in want]
        request.order, request.page_token = pb.LOG_ORDER_DESC, ""
        assert every_page(stub, request)[0] == [expected(line) for line in want[::-1]]


@pytest.mark.parametrize(
    "needle",
    [RARE, RARE.upper(), "xwvu", "über", "ÜBER", "ошибка", "СОЕДИНЕНИЯ", "日本語", "NAÏVE", "ΔΈΛΤΑ", "δέλτα"]
    + ["100%", "0%", "done_x", "e_x", "back\\slash", "quote's", "tab\th", "ms request", "%", "_"]
    # A capital sigma lowers to ς at the end of a word, to σ inside one: each is found in both.
    + ["ΠΡΟΣ", "προς", "ΟΧΗ", "οδοσ", "ΟΔΟΣ", "Σ", "ς"],
)
def test_contains_ignores_case_in_any_script_and_takes_like_characters_literally(stub, logs, needle):
    def folded(text: str) -> str:
        return text.lower().replace("ς", "σ")

    found_any = False
    for job in logs.jobs:
        want = [expected(line) for line in job.lines if folded(needle) in folded(line.message)]
        found_any |= bool(want)
        assert every_page(stub, request_for(job, contains=needle, page_size=50))[0] == want, job.job_id
    assert found_any, needle


def test_the_rare_word_is_found_once_per_job(stub, logs):
    for job in logs.jobs:
        [line] = stub.ListJobLogs(request_for(job, contains=RARE.capitalize()), timeout=30).lines
        assert f"the {RARE.upper()} exploded" in line.message


def test_filters_combine_and_page(stub, logs):
    job = max(logs.jobs, key=lambda job: len(job.lines))
    start = job.lines[3].time
    want = [
        expected(line)
        for line in job.lines
        if line.stream == "stderr" and line.time >= start and "worker" in line.message.lower()
    ]
    request = request_for(
        job, stream=pb.LOG_STREAM_STDERR, start_time=iso(start), contains="WORKER", order=pb.LOG_ORDER_DESC, page_size=3
    )
    assert every_page(stub, request)[0] == want[::-1]


# -- page tokens and requests -------------------------------------------------------------------


def test_a_page_token_works_only_for_its_own_query(stub, logs):
    job, other = logs.jobs[0], logs.jobs[1]
    token = stub.ListJobLogs(request_for(job, page_size=5), timeout=30).next_page_token
    assert token
    for request in (
        request_for(job, page_size=5, page_token=token, order=pb.LOG_ORDER_DESC),
        request_for(job, page_size=5, page_token=token, stream=pb.LOG_STREAM_STDOUT),
        request_for(job, page_size=5, page_token=token, contains="worker"),
        request_for(job, page_size=5, page_token=token, start_time="2001-01-01T00:00:00Z"),
        request_for(other, page_size=5, page_token=token),
    ):
        error = rpc_error(stub.ListJobLogs, request)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "page_token belongs to another query" in error.details()
    # another page size is the same query
    assert stub.ListJobLogs(request_for(job, page_size=9, page_token=token), timeout=30).lines[0].sequence == 5
    error = rpc_error(stub.ListJobLogs, request_for(job, page_token=token[:-3] + "xyz"))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a token this service issued" in error.details()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"job_id": ""}, "job_id is required"),
        ({"workflow_id": "w 1"}, "workflow_id may hold only"),
        ({"start_time": "2026-03-02"}, "start_time must be an RFC 3339 time"),
        ({"end_time": "2026-03-02T10:00:00"}, "end_time must be an RFC 3339 time"),
        ({"start_time": "2026-03-02T10:00:00Z", "end_time": "2026-03-02T09:00:00Z"}, "is after end_time"),
        ({"page_size": -1}, "page_size must not be negative"),
        ({"stream": 7}, "stream 7 is not one of"),
        ({"order": 9}, "order 9 is not one of"),
        ({"contains": "x" * 1001}, "contains is longer than 1000 characters"),
    ],
)
def test_bad_requests_name_the_field(stub, logs, fields, message):
    request = request_for(logs.jobs[0])
    for name, value in fields.items():
        setattr(request, name, value)
    error = rpc_error(stub.ListJobLogs, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in error.details()


def test_another_users_job_or_workflow_is_not_found(stub, logs):
    job, other_user = logs.jobs[0], logs.jobs[-1]
    assert job.user_id != other_user.user_id
    for ids in (
        {**job.ids, "user_id": other_user.user_id},
        {**job.ids, "workflow_id": other_user.workflow_id},
        {**job.ids, "job_id": job.job_id + "-none"},
    ):
        error = rpc_error(stub.ListJobLogs, pb.ListJobLogsRequest(**ids))
        assert error.code() == grpc.StatusCode.NOT_FOUND
        assert "no job" in error.details()


def test_a_job_without_lines_lists_nothing(stub, analytics_db):
    prefix = log_datasets.generate_logs(seed=72, users=0).prefix
    job = JobLog(f"{prefix}-u", f"{prefix}-w", f"{prefix}-j")
    now = dt.datetime.now(dt.UTC)
    assert post_batch(analytics_db, "jobs", [log_datasets.job_event(job, "created", now, f"{prefix}-1")]).status == 200
    response = stub.ListJobLogs(request_for(job), timeout=30)
    assert (list(response.lines), response.next_page_token, response.lines_expired) == ([], "", False)


def test_a_line_that_is_not_utf8_lists_with_replacement_characters(stub, analytics_db):
    # The intake refuses bytes that are not UTF-8 now, but tables filled by an earlier version (or by
    # hand) can hold them: the stored line is rewritten to such bytes as those would have kept them.
    prefix = log_datasets.generate_logs(seed=76, users=0).prefix
    job = JobLog(f"{prefix}-u", f"{prefix}-w", f"{prefix}-j")
    logged = dt.datetime.now(dt.UTC)
    event = log_datasets.log_event(job, f"{prefix}-1", logged, sequence=1, message="MARK")
    assert post_batch(analytics_db, "job_logs", [event]).status == 200
    # Only the day's partition: a mutation of the whole shared table waits for every part's merges.
    rewrite = (
        "ALTER TABLE analytics.job_log_events UPDATE message = concat('bad ', unhex('FF'), ' bytes') "
        f"IN PARTITION ID '{logged:%Y%m%d}' WHERE event_id = '{prefix}-1' SETTINGS mutations_sync = 1"
    )
    response = HTTP.request("POST", f"{analytics_db.url}/", body=rewrite.encode())
    assert response.status == 200, response.data
    [line] = stub.ListJobLogs(request_for(job), timeout=30).lines
    assert line.message == "bad \ufffd bytes"


def test_pages_of_lines_stored_with_many_bytes_that_are_not_utf8_go_on_to_the_last_line(stub, analytics_db):
    """A run of such bytes comes back as one U+FFFD: 40 lines of 600 kB read as 40 short ones. A page
    that counted the bytes stored stopped after 11 lines and said nothing followed (and a tail's
    history alike). Stored as an earlier version could keep them, as in the test above."""
    prefix = log_datasets.generate_logs(seed=79, users=0).prefix
    job = JobLog(f"{prefix}-u", f"{prefix}-w", f"{prefix}-j")
    logged = dt.datetime.now(dt.UTC)
    events = [log_datasets.log_event(job, f"{prefix}-{n}", logged, sequence=n, message="MARK") for n in range(40)]
    assert post_batch(analytics_db, "job_logs", events).status == 200
    rewrite = (
        "ALTER TABLE analytics.job_log_events UPDATE message = concat('x', unhex(repeat('FC8080808080', 100000))) "
        f"IN PARTITION ID '{logged:%Y%m%d}' WHERE job_id = '{job.job_id}' SETTINGS mutations_sync = 1"
    )
    response = HTTP.request("POST", f"{analytics_db.url}/", body=rewrite.encode())
    assert response.status == 200, response.data
    lines, request = [], request_for(job, page_size=5000)
    while True:  # pages of fewer lines than they could hold: the budget counts the bytes stored
        response = stub.ListJobLogs(request, timeout=30)
        lines += response.lines
        if not response.next_page_token:
            break
        request.page_token = response.next_page_token
    assert [line.sequence for line in lines] == list(range(40))
    assert {line.message for line in lines} == {"x\ufffd"}
    ended = log_datasets.job_event(job, "completed", logged, f"{prefix}-end")
    assert post_batch(analytics_db, "jobs", [ended]).status == 200
    tail = stub.StreamJobLogs(pb.StreamJobLogsRequest(**job.ids), timeout=60)
    assert [line.sequence for line in tail] == list(range(40))


def test_the_largest_page_is_5000_lines(stub, analytics_db):
    prefix = log_datasets.generate_logs(seed=73, users=0).prefix
    job = JobLog(f"{prefix}-u", f"{prefix}-w", f"{prefix}-j")
    moment = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    events = [log_datasets.log_event(job, f"{prefix}-{n}", moment, sequence=n, message=f"{n}") for n in range(5003)]
    assert post_batch(analytics_db, "job_logs", events).status == 200
    first = stub.ListJobLogs(request_for(job, page_size=100_000), timeout=30)
    assert [line.sequence for line in first.lines] == list(range(5000))
    rest = stub.ListJobLogs(request_for(job, page_size=100_000, page_token=first.next_page_token), timeout=30)
    assert ([line.sequence for line in rest.lines], rest.next_page_token) == ([5000, 5001, 5002], "")


class MeasuredBackend(HttpBackend):
    """The ClickHouse of the tests over HTTP, keeping the most text one answer brought back."""

    largest_answer = 0

    def rows(self, sql, params, timeout):
        rows = super().rows(sql, params, timeout)
        size = sum(len(cell) for row in rows for cell in row if isinstance(cell, str))
        self.largest_answer = max(self.largest_answer, size)
        return rows


LONG = 100_000


def long_lines(analytics_db, seed: int, count: int, ended: bool = False) -> JobLog:
    """A job of ``count`` lines of LONG characters."""
    prefix = log_datasets.generate_logs(seed=seed, users=0).prefix
    job = JobLog(f"{prefix}-u", f"{prefix}-w", f"{prefix}-j")
    moment = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    for first in range(0, count, 250):
        events = [
            log_datasets.log_event(job, f"{prefix}-{n}", moment, sequence=n, message=f"{n} " + "x" * LONG)
            for n in range(first, min(count, first + 250))
        ]
        assert post_batch(analytics_db, "job_logs", events).status == 200
    if ended:
        ending = log_datasets.job_event(job, "completed", moment, f"{prefix}-end")
        assert post_batch(analytics_db, "jobs", [ending]).status == 200
    return job


@contextlib.contextmanager
def measured_service(analytics_db, **settings) -> Iterator[tuple[pb_grpc.AnalyticsServiceStub, MeasuredBackend]]:
    """The service in this process, to measure what ClickHouse answered; calls go through a real channel."""
    backend = MeasuredBackend(analytics_db.url)
    server = AnalyticsServer(GrpcSettings(grpc_port=free_port(), grpc_health_check_interval=0, **settings), backend)
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            yield pb_grpc.AnalyticsServiceStub(channel), backend
    finally:
        server.stop()


def test_a_page_of_long_lines_reads_what_it_sends_not_every_line_it_may_hold(analytics_db):
    """A page stops before 3 MiB; it read all its page_size lines first and cut them after. 1,000
    lines of 100 kB at page_size 5000 brought 100 MB from ClickHouse for each page of 31 lines (a
    walk through 3,000 such lines took 100 s instead of 13)."""
    job = long_lines(analytics_db, seed=77, count=1000)
    with measured_service(analytics_db) as (stub, backend):
        for order in (pb.LOG_ORDER_ASC, pb.LOG_ORDER_DESC):
            seen, token = [], ""
            while True:
                request = request_for(job, page_size=5000, order=order, page_token=token)
                response = stub.ListJobLogs(request, timeout=60)
                assert len(response.lines) >= 25 or not response.next_page_token
                seen += [line.sequence for line in response.lines]
                token = response.next_page_token
                if not token:
                    break
            assert seen == (list(range(1000)) if order == pb.LOG_ORDER_ASC else list(range(999, -1, -1)))
    # what a page sends (3 MiB) and the line after it, not 5,000 lines of 100 kB
    assert backend.largest_answer < (3 << 20) + 2 * LONG


def test_a_tails_history_of_long_lines_is_read_a_few_mib_at_a_time(analytics_db):
    """5,000 lines a query: 5,000 lines of 100 kB were 500 MB in one answer (of a MiB, 5 GB). The job
    has ended, and with no linger the tail reads its history only (not the lines landed since)."""
    job = long_lines(analytics_db, seed=78, count=600, ended=True)
    with measured_service(analytics_db, grpc_log_tail_linger=0) as (stub, backend):
        tail = stub.StreamJobLogs(pb.StreamJobLogsRequest(**job.ids), timeout=120)
        assert [line.sequence for line in tail] == list(range(600))
    assert backend.largest_answer < log_service.HISTORY_BYTES + 2 * LONG


def test_long_lines_page_within_what_a_client_takes_and_a_line_over_a_mib_is_cut(stub, analytics_db):
    # The stub's channel takes gRPC's default 4 MiB a message, as the scheduler's Go client does.
    prefix = log_datasets.generate_logs(seed=77, users=0).prefix
    job = JobLog(f"{prefix}-u", f"{prefix}-w", f"{prefix}-j")
    moment = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    long = "é" * 150_000  # 300,000 bytes of UTF-8
    over = "x" * ((1 << 20) - 1) + "é and more"  # past 1 MiB, the "é" cut in two at the MiB
    events = [log_datasets.log_event(job, f"{prefix}-{n}", moment, sequence=n, message=f"{n}{long}") for n in range(20)]
    events.append(log_datasets.log_event(job, f"{prefix}-20", moment, sequence=20, message=over))
    assert post_batch(analytics_db, "job_logs", events).status == 200

    lines, pages, request = [], 0, request_for(job, page_size=5000)
    while True:
        response = stub.ListJobLogs(request, timeout=30)
        assert response.ByteSize() <= 3 << 20
        lines += response.lines
        pages += 1
        if not response.next_page_token:
            break
        request.page_token = response.next_page_token
    assert [line.sequence for line in lines] == list(range(21)) and pages == 3  # ten 300 KB lines a page
    assert all(line.message == f"{n}{long}" and not line.message_truncated for n, line in enumerate(lines[:20]))
    # Cut before the character the MiB splits, not into a replacement character past the MiB.
    assert (lines[20].message, lines[20].message_truncated) == ("x" * ((1 << 20) - 1), True)

    streamed = []
    for line in stub.StreamJobLogs(pb.StreamJobLogsRequest(**job.ids), timeout=30):
        streamed.append(line)
        if len(streamed) == 21:
            break
    assert [(line.message, line.message_truncated) for line in streamed] == [
        (line.message, line.message_truncated) for line in lines
    ]


def test_a_cut_message_ends_before_the_character_the_mib_splits(analytics_db):
    """The cut in every position inside a 4-byte character: the longest whole-character prefix."""
    limit = server_logs.MAX_MESSAGE_BYTES
    for before in range(limit - 4, limit + 1):
        sql = (
            f"SELECT substring(message, 1, {limit} - {server_logs.CUT_BACK}) AS cut "
            f"FROM (SELECT concat(repeat('x', {before} - 100000), repeat('x', 100000), '\U0001f600', 'y') AS message)"
        )
        [row] = query(analytics_db, sql)
        whole = before + 4 <= limit
        assert row["cut"] == "x" * before + ("\U0001f600" if whole else ""), before


def test_grpcurl_json_through_reflection(service, logs):
    job = logs.jobs[0]
    body = '{"user_id": "%s", "workflow_id": "%s", "job_id": "%s", "stream": "LOG_STREAM_STDERR", "page_size": 2}'
    answer = call_by_reflection(
        service.target, "analytics.AnalyticsService/ListJobLogs", body % (job.user_id, job.workflow_id, job.job_id)
    )
    first = [line for line in job.lines if line.stream == "stderr"][:2]
    assert answer["lines"] == [
        {
            "event_id": line.event_id,
            "timestamp": line.timestamp,
            "stream": "stderr",
            **({"sequence": str(line.sequence)} if line.sequence else {}),
            "message": line.message,
        }
        for line in first
    ]
    assert answer["next_page_token"]


# -- expiry ---------------------------------------------------------------------------------------


def test_expired_lines_are_flagged_and_count_only_events_never_are(stub, analytics_db):
    """Lines older than the 720-hour retention go when TTL runs; the counts and the flag stay."""
    prefix = log_datasets.generate_logs(seed=74, users=0).prefix
    old = dt.datetime.now(dt.UTC) - dt.timedelta(days=40)
    recent = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    partly, wholly, counts = (JobLog(f"{prefix}-u", f"{prefix}-w", f"{prefix}-{name}") for name in "pwc")
    events = [
        *(log_datasets.log_event(partly, f"{prefix}-p{n}", old, sequence=n, message=f"old {n}") for n in range(3)),
        *(log_datasets.log_event(partly, f"{prefix}-p{n}", recent, sequence=n, message=f"new {n}") for n in (3, 4)),
        log_datasets.log_event(wholly, f"{prefix}-w0", old, sequence=0, message="gone"),
        log_datasets.log_event(counts, f"{prefix}-c0", old, count=40),
        log_datasets.log_event(counts, f"{prefix}-c1", recent, count=2),
    ]
    execute(analytics_db, "SYSTEM STOP TTL MERGES analytics.job_log_events")  # expire when this test says
    try:
        assert post_batch(analytics_db, "job_logs", events).status == 200
        for job, lines in ((partly, 5), (wholly, 1), (counts, 0)):
            response = stub.ListJobLogs(request_for(job), timeout=30)
            assert (len(response.lines), response.lines_expired) == (lines, False)
    finally:
        execute(analytics_db, "SYSTEM START TTL MERGES analytics.job_log_events")
    execute(analytics_db, "OPTIMIZE TABLE analytics.job_log_events FINAL")  # TTL drops the expired parts

    response = stub.ListJobLogs(request_for(partly), timeout=30)
    assert ([line.message for line in response.lines], response.lines_expired) == (["new 3", "new 4"], True)
    # the flag is the job's, whatever the filter or page
    filtered = stub.ListJobLogs(request_for(partly, contains="new 4"), timeout=30)
    assert ([line.message for line in filtered.lines], filtered.lines_expired) == (["new 4"], True)
    response = stub.ListJobLogs(request_for(wholly), timeout=30)
    assert (list(response.lines), response.lines_expired) == ([], True)
    # count-only events expire too, but they never were lines
    response = stub.ListJobLogs(request_for(counts), timeout=30)
    assert (list(response.lines), response.lines_expired) == ([], False)
    [totals] = query(
        analytics_db,
        f"SELECT sum(joblogs) AS n FROM analytics.workflow_totals WHERE user_id = '{prefix}-u'",
    )
    assert int(totals["n"]) == 5 + 1 + 42  # counts never expire


def test_lines_counted_twice_by_racing_inserts_are_not_taken_for_expired(own_analytics_db, tmp_path):
    """Two inserts racing with the same new line both pass the first-seen gate and count it twice
    (README, "Exact after reconciliation"): more lines counted than stored, but none of the job's
    lines is old enough for the retention to have removed it, so none expired. On a server of its
    own: the counts it leaves off would be corrected by other tests' rebuilds of the day."""
    analytics_db, _ = own_analytics_db
    service = start_grpc(tmp_path, "--clickhouse-url", analytics_db.url)
    try:
        with service.channel() as channel:
            lines_counted_twice_are_not_expired(service.stub(channel), analytics_db)
    finally:
        assert service.stop() == 0, service.log()


def lines_counted_twice_are_not_expired(stub, analytics_db) -> None:
    prefix = log_datasets.generate_logs(seed=75, users=0).prefix
    recent, old = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2), dt.datetime.now(dt.UTC) - dt.timedelta(days=40)
    fresh, aged, counted = (JobLog(f"{prefix}-u", f"{prefix}-w", f"{prefix}-{name}") for name in "fac")
    events = [
        *(log_datasets.log_event(fresh, f"{prefix}-f{n}", recent, sequence=n, message=f"line {n}") for n in range(2)),
        log_datasets.log_event(aged, f"{prefix}-a0", old, sequence=0, message="kept"),
        # An old count-only event: the job's first log event is old, its lines are not.
        log_datasets.log_event(counted, f"{prefix}-c0", old, count=40),
        log_datasets.log_event(counted, f"{prefix}-c1", recent, sequence=1, message="line 1"),
    ]
    execute(analytics_db, "SYSTEM STOP TTL MERGES analytics.job_log_events")  # the old line stays stored
    try:
        assert post_batch(analytics_db, "job_logs", events).status == 200
        for job in (fresh, aged, counted):  # what the race leaves: one line counted once more
            execute(
                analytics_db,
                "INSERT INTO analytics.job_log_totals (user_id, workflow_id, job_id, lines, entries)"
                f" VALUES ('{job.user_id}', '{job.workflow_id}', '{job.job_id}', 1, 1)",
            )
        response = stub.ListJobLogs(request_for(fresh), timeout=30)
        assert (len(response.lines), response.lines_expired) == (2, False)
        # A job whose first line is past the retention: the difference may be retention's.
        response = stub.ListJobLogs(request_for(aged), timeout=30)
        assert (len(response.lines), response.lines_expired) == (1, True)
        # Lines expire by their own age: an old count-only event made a raced line look expired.
        response = stub.ListJobLogs(request_for(counted), timeout=30)
        assert (len(response.lines), response.lines_expired) == (1, False)
    finally:
        execute(analytics_db, "SYSTEM START TTL MERGES analytics.job_log_events")
