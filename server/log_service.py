"""ListJobLogs and StreamJobLogs: a job's log lines by page, and tailed as they land."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc

from analytics_proto import analytics_pb2 as pb
from core.backend import QueryTimedOut
from server import pagination
from server.answers import Exhausted, NotFound, Unavailable, abort_with_status, query_timeout, respond_or_abort
from server.logs import JobRef, LogFilter, LogQueries, LogRow
from server.tail import End, TailHub
from server.validation import (
    IdFormat,
    check_contains,
    check_enum,
    check_page_size,
    check_time_range,
)

DEFAULT_PAGE_SIZE = 500
MAX_PAGE_SIZE = 5000
# Lines per query while a tail sends the job's history, and their bytes (a query reads the lines
# that fit and the one after: 5,000 lines of a MiB would be 5 GB in one answer).
HISTORY_PAGE = 5000
HISTORY_BYTES = 8 << 20
# How often a waiting tail looks whether its client is still there.
WAKE_SECONDS = 1.0

STREAMS = {pb.LOG_STREAM_ALL: None, pb.LOG_STREAM_STDOUT: "stdout", pb.LOG_STREAM_STDERR: "stderr"}


def timestamp(time_ms: int) -> str:
    """RFC 3339 in UTC with milliseconds: 2026-03-02T10:00:00.123Z."""
    moment = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=time_ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{time_ms % 1000:03d}Z"


def line_message(row: LogRow) -> pb.LogLine:
    return pb.LogLine(
        event_id=row.event_id,
        timestamp=row.timestamp,
        stream=row.stream,
        sequence=row.sequence,
        message=row.message,
        message_truncated=row.message_truncated,
    )


class JobLogService:
    """The job-log RPCs of AnalyticsService; the servicer hands them their calls."""

    def __init__(
        self,
        logs: LogQueries,
        hub: TailHub,
        ids: IdFormat,
        default_deadline: float,
        max_tails: int,
        workers: int,
        free_workers: threading.Semaphore | None = None,
    ):
        self.logs = logs
        # The workers of the unary calls (server/interceptors.py, WorkerLimit): a tail's queries
        # before it follows the hub run on one, so a burst of tails sends ClickHouse no more
        # queries at once than the workers do (250 tails at once had it refuse other clients).
        self._free_workers = free_workers or threading.BoundedSemaphore(workers)
        self.hub = hub
        self.ids = ids
        self.default_deadline = default_deadline
        self.max_tails = max_tails
        self._tail_slots = threading.BoundedSemaphore(max_tails)
        # ListJobLogs asks for the job's counts while its page is read: two statements at once
        # (each thread has a ClickHouse connection of its own).
        self._beside = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="log-state")

    def close(self) -> None:
        """Stop the helper threads, once no call runs any more."""
        self._beside.shutdown(wait=True, cancel_futures=True)

    def _job(self, request) -> JobRef:
        return JobRef(
            self.ids.check("user_id", request.user_id),
            self.ids.check("workflow_id", request.workflow_id),
            self.ids.check("job_id", request.job_id),
        )

    def list(self, request: pb.ListJobLogsRequest, context: grpc.ServicerContext) -> pb.ListJobLogsResponse:
        def respond(timeout: float) -> pb.ListJobLogsResponse:
            job = self._job(request)
            stream = STREAMS[check_enum("stream", request.stream, pb.LogStream)]
            descending = check_enum("order", request.order, pb.LogOrder) == pb.LOG_ORDER_DESC
            start, end = check_time_range(request.start_time, request.end_time)
            where = LogFilter(stream, start, end, check_contains(request.contains))
            page_size = check_page_size(request.page_size, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
            query = pagination.fingerprint(
                "logs", job.user_id, job.workflow_id, job.job_id, stream, start, end, where.contains, descending
            )
            after = pagination.decode_log(request.page_token, query)
            asked = self._beside.submit(self.logs.log_state, job, timeout)
            try:
                # One line more than the page tells whether another page follows (or the budget's cut).
                rows, cut = self.logs.sized_page(
                    job, where, descending, after, page_size + 1, pagination.PAGE_BYTES, timeout
                )
            finally:
                state = asked.result()  # its failure, if any, is the answer's
            if not state.logged and not self.logs.job_exists(job, timeout):
                raise NotFound(f"no {job}")
            lines = [line_message(row) for row in rows[:page_size]]

            def token_after(count: int) -> str:
                more = len(rows) > count or cut
                return pagination.encode_log(query, rows[count - 1].position) if more else ""

            kept, next_token = pagination.cut(lines, token_after)
            return pb.ListJobLogsResponse(
                lines=lines[:kept], next_page_token=next_token, lines_expired=state.lines_expired
            )

        return respond_or_abort("ListJobLogs", context, self.default_deadline, respond)

    def stream(self, request: pb.StreamJobLogsRequest, context: grpc.ServicerContext) -> Iterator[pb.LogLine]:
        if not self._tail_slots.acquire(blocking=False):
            context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"this server already tails {self.max_tails} job logs (ANALYTICS_GRPC_MAX_LOG_TAILS); try again later",
            )
        try:
            yield from self._tail(request, context)
        except Exception as error:  # noqa: BLE001 - every failure becomes a status code
            abort_with_status("StreamJobLogs", context, error)
        finally:
            self._tail_slots.release()

    def _tail(self, request: pb.StreamJobLogsRequest, context: grpc.ServicerContext) -> Iterator[pb.LogLine]:
        job = self._job(request)
        where = LogFilter(STREAMS[check_enum("stream", request.stream, pb.LogStream)])
        state = self._on_a_worker(context, self.logs.tail_state, job)
        if not state.known:
            raise NotFound(f"no {job}")
        # Subscribe before reading the history, so no line falls between the two. A job whose end
        # landed within the linger is still tailed: its last lines may still be on their way.
        lingering = state.ended_ago_ms is not None and state.ended_ago_ms < self.hub.linger_ms
        ended = state.ended and not lingering
        subscription = None if ended else self._on_a_worker(context, self.hub.subscribe, job)
        if subscription is not None:
            context.add_callback(subscription.cancel)
        try:
            # Lines of the history that the tail may hand over again (landed after it starts from);
            # kept for the tail's length (a few seconds of lines), as a raced line may come twice.
            sent_recently: set[str] = set()
            after = None
            while context.is_active():
                rows, cut = self._on_a_worker(context, self._history, job, where, after)
                for row in rows:
                    if subscription is not None and row.ingested_ms >= subscription.since_ms:
                        sent_recently.add(row.key)
                    yield line_message(row)
                if len(rows) < HISTORY_PAGE and not cut:
                    break
                after = rows[-1].position
            if subscription is None:
                return  # the job had ended a linger before the tail started: its log is complete
            while context.is_active():
                rows, end = subscription.take(WAKE_SECONDS)
                for row in rows:
                    if row.key not in sent_recently and where.accepts_stream(row.stream):
                        yield line_message(row)
                if end is not None:
                    self._ended(end)
                    return
        finally:
            if subscription is not None:
                self.hub.unsubscribe(subscription)

    def _history(
        self, job: JobRef, where: LogFilter, after: pagination.LogPosition | None, timeout: float
    ) -> tuple[list[LogRow], bool]:
        return self.logs.sized_page(job, where, False, after, HISTORY_PAGE, HISTORY_BYTES, timeout)

    def _on_a_worker(self, context: grpc.ServicerContext, query, *args):
        """``query(*args, timeout)`` once a worker is free, within the call's deadline."""
        if not self._free_workers.acquire(timeout=self._timeout(context)):
            raise QueryTimedOut("the deadline passed while the tail waited for a worker")
        try:
            return query(*args, self._timeout(context))
        finally:
            self._free_workers.release()

    def _timeout(self, context: grpc.ServicerContext) -> float:
        timeout = query_timeout(context, self.default_deadline)
        if timeout <= 0:
            raise QueryTimedOut("the deadline passed")
        return timeout

    @staticmethod
    def _ended(end: End) -> None:
        """Return when the tail ends normally; raise what the client should see otherwise."""
        if end in (End.JOB_ENDED, End.CANCELLED):
            return
        if end is End.TOO_SLOW:
            raise Exhausted("the client read the tail too slowly: call again to tail the job anew")
        raise Unavailable(f"{end.value}: call again to tail the job anew")
