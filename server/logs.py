"""The job-log queries of the gRPC service, over the raw job log events and job_log_totals.

The job log events (core.names.JOB_LOG_EVENTS) are ordered by (user_id, workflow_id, job_id,
is_line, assumeNotNull(sequence), event_time, dedup_key), a line without a sequence counting
as 0: a job's lines are one range of the primary key, read in that order, so a page is a keyset
range (after the previous page's last line) with a LIMIT, whatever the job's size. A
case-insensitive search is `lowerUTF8(message) like ...`, which the n-gram index of the same
expression answers granule by granule. job_log_totals keeps each job's line count after the
lines expire: more lines counted than stored means retention removed some.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import NamedTuple

from core import names
from core.backend import Value
from core.names import qualified
from server.pagination import LogPosition
from server.queries import Queries

LOG_EVENTS = qualified(names.JOB_LOG_EVENTS)
LOG_TOTALS = qualified(names.JOB_LOG_TOTALS)
FIRST_SEEN = qualified(names.JOB_FIRST_SEEN)
COMPLETIONS = qualified(names.JOB_COMPLETIONS)

JOB = "user_id = {user_id:String} and workflow_id = {workflow_id:String} and job_id = {job_id:String}"
# The table's order after the job: what pages, tails and tokens sort and resume by.
LINE_ORDER = ("assumeNotNull(sequence)", "event_time", "dedup_key")
# A line's message is sent up to its first MiB of UTF-8, ending before a character the MiB would cut
# (CUT_BACK; cut in two, the answer's UTF-8 check made it a U+FFFD past the MiB): any line then fits
# in the 4 MiB a gRPC client takes by default, and a tail's history page of 5,000 lines holds at
# most 5,000 of them in the server's memory (a ListJobLogs page reads what fits in its 3 MiB).
MAX_MESSAGE_BYTES = 1 << 20


def _continues(position: int) -> str:
    """Whether the message's byte at ``position`` (1 first) continues a UTF-8 character."""
    return f"bitAnd(reinterpretAsUInt8(substring(message, {position}, 1)), 0xC0) = 0x80"


# A cut after MAX_MESSAGE_BYTES that would split a character ends before the character instead.
CUT_BACK = f"""multiIf(
        not {_continues(MAX_MESSAGE_BYTES + 1)}, 0,
        not {_continues(MAX_MESSAGE_BYTES)}, 1,
        not {_continues(MAX_MESSAGE_BYTES - 1)}, 2,
        3)"""
# About what a line takes in an answer: what a page's byte budget counts in SQL, so that lines of
# up to a MiB are not read into the answer only to be cut from it.
LINE_BYTES = f"least(length(message), {MAX_MESSAGE_BYTES}) + length(event_id) + length(stream)"
LINE_COLUMNS = f"""event_id,
    concat(substring(formatDateTime(event_time, '%Y-%m-%dT%H:%i:%S.%f', 'UTC'), 1, 23), 'Z'),
    stream,
    ifNull(sequence, 0),
    substring(message, 1, {MAX_MESSAGE_BYTES} - {CUT_BACK}),
    hex(dedup_key),
    toUnixTimestamp64Milli(event_time),
    toUnixTimestamp64Milli(ingested_at),
    length(message) > {MAX_MESSAGE_BYTES}"""

# Each table a statement touches costs chDB about 2 ms, so each call asks only what it needs.
# ListJobLogs: whether the job logged anything, the lines counted, the lines still stored. An
# insert makes its lines visible before the views' totals, so the totals are read first (scalar
# subqueries run before the main query): lines landing meanwhile never look expired.
LOG_STATE = f"""with (select (count() > 0, toUInt64(sum(lines))) from {LOG_TOTALS} where {JOB}) as counted
select counted.1, counted.2, count()
from {LOG_EVENTS}
where {JOB} and is_line = true"""
# ... and, for a job that never logged, whether it exists at all.
JOB_EXISTS = f"select count() > 0 from {FIRST_SEEN} where {JOB}"
# ... and, when more lines were counted than are stored, whether retention can have removed any:
# the job's first line on a day before every line is known to be kept (any retention applied
# since, storage_log_retention's lines_complete_since, as the dbt tests and reconciliation decide;
# its first log event where no line's time was kept, as in totals from before first_line_at), or a
# TTL set by hand in another form. Else the difference is a line counted twice by two inserts that
# raced with it (README, "Exact after reconciliation"), which reconciliation repairs.
MAY_HAVE_EXPIRED = f"""select
    toDate((select coalesce(min(first_line_at), min(first_event_at)) from {LOG_TOTALS} where {JOB}))
        <= toDate(lines_complete_since)
    or (not audit_mode and log_retention_hours is null)
from {qualified(names.STORAGE_LOG_RETENTION)}"""
# StreamJobLogs: whether the job exists, whether it has ended, and how long ago its end landed
# (milliseconds of ClickHouse's clock; null when no end event is stored).
TAIL_STATE = f"""select
    (select count() from {FIRST_SEEN} where {JOB})
        + (select count() from {LOG_TOTALS} where {JOB}) > 0,
    (select count() from {COMPLETIONS} where {JOB}) > 0,
    (select toUnixTimestamp64Milli(now64(3)) - toUnixTimestamp64Milli(minOrNull(ingested_at))
     from {qualified(names.JOB_EVENTS)}
     where {JOB} and event_name in ('completed', 'failed', 'cancelled'))"""

# What the tails of several jobs poll for: their lines that landed since a moment (each row
# names its job by its place in the list, 1 first), the keys alone of those lines (for the
# sweeps, which reach far back and need only what is missing), the lines of some keys, and
# which of the jobs have ended, with ClickHouse's clock (the moment the next poll starts from).
TAILED = """(user_id, workflow_id, job_id) in {jobs:Array(Tuple(String, String, String))}
    and is_line = true
    and ingested_at >= fromUnixTimestamp64Milli({since_ms:Int64}, 'UTC')"""
JOB_INDEX = "indexOf({jobs:Array(Tuple(String, String, String))}, (user_id, workflow_id, job_id))"
LANDED_SINCE = f"""select {JOB_INDEX} as job, {LINE_COLUMNS}
from {LOG_EVENTS}
where {TAILED}
order by job, {", ".join(LINE_ORDER)}"""
LANDED_KEYS = f"""select {JOB_INDEX}, hex(dedup_key)
from {LOG_EVENTS}
where {TAILED}"""
LANDED_LINES = f"""select {JOB_INDEX} as job, {LINE_COLUMNS}
from {LOG_EVENTS}
where {TAILED} and hex(dedup_key) in {{keys:Array(String)}}
order by job, {", ".join(LINE_ORDER)}"""
ENDED = f"""select
    toUnixTimestamp64Milli(now64(3)),
    groupUniqArray((user_id, workflow_id, job_id))
from {COMPLETIONS}
where (user_id, workflow_id, job_id) in {{jobs:Array(Tuple(String, String, String))}}"""

STREAMS = ("stdout", "stderr")


@dataclass(frozen=True)
class JobRef:
    user_id: str
    workflow_id: str
    job_id: str

    def params(self) -> dict[str, Value]:
        return {"user_id": self.user_id, "workflow_id": self.workflow_id, "job_id": self.job_id}

    def __str__(self) -> str:
        return f"job {self.job_id!r} of workflow {self.workflow_id!r} of user {self.user_id!r}"


@dataclass(frozen=True)
class LogFilter:
    """Which of a job's lines: a stream (None: all), a time range [start, end) in ms, a text."""

    stream: str | None = None
    start: int | None = None
    end: int | None = None
    contains: str | None = None

    def accepts_stream(self, stream: str) -> bool:
        return self.stream is None or stream.lower() == self.stream


class TailState(NamedTuple):
    """What StreamJobLogs needs to know of a job before it starts."""

    known: bool
    ended: bool
    # Milliseconds since the job's end landed; None when not known here (a cluster keeps no
    # Distributed job_events: its end may be on another shard).
    ended_ago_ms: int | None


class LogRow(NamedTuple):
    """A line as the queries return it (a tuple: pages of thousands are built per call)."""

    event_id: str
    timestamp: str  # RFC 3339, UTC, milliseconds: 2026-03-02T10:00:00.123Z
    stream: str
    sequence: int
    message: str
    key: str  # dedup_key, hex
    time_ms: int
    ingested_ms: int
    message_truncated: bool  # the message is the first MAX_MESSAGE_BYTES of a longer one

    @property
    def position(self) -> LogPosition:
        return LogPosition(self.sequence, self.time_ms, self.key)

    @classmethod
    def parse(cls, row: list) -> LogRow:
        event_id, timestamp, stream, sequence, message, key, time_ms, ingested_ms, truncated = row
        return cls(
            event_id, timestamp, stream, int(sequence), message, key, int(time_ms), int(ingested_ms), bool(truncated)
        )


@dataclass(frozen=True)
class LogState:
    logged: bool  # any log event of this job of this user's workflow landed
    counted_lines: int
    stored_lines: int
    may_have_expired: bool = True  # retention can have removed lines of the job (MAY_HAVE_EXPIRED)

    @property
    def lines_expired(self) -> bool:
        return self.counted_lines > self.stored_lines and self.may_have_expired


def like_pattern(text: str) -> str:
    """A LIKE pattern matching any text that contains ``text`` literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


# Greek capital sigma lowers to ς at the end of a word and to σ elsewhere (lowerUTF8 follows
# Unicode), so a message and the text asked for, each lowered, disagree wherever one ends after a
# sigma and the other goes on: "ΠΡΟΣ" lowers to "προς", and inside "ΠΡΟΣΟΧΗ" to "προσ". It is
# the only letter whose lower case depends on its neighbours; both sides then fold ς into σ.
_SIGMAS = re.compile("[Σσς]")
_FOLDED = "replaceAll(lowerUTF8({}), 'ς', 'σ')"


def contains_conditions(text: str) -> tuple[list[str], dict[str, Value]]:
    """The conditions (and their parameters) of a line whose message contains ``text``, ignoring case.

    Both sides are lower-cased by ClickHouse, so the n-gram index of lowerUTF8(message) applies.
    With a sigma in the text the match is on the sigma-folded forms, and the longest piece of the
    text without one is what the index looks for.
    """
    if not _SIGMAS.search(text):
        return ["lowerUTF8(message) like lowerUTF8({pattern:String})"], {"pattern": like_pattern(text)}
    conditions = [f"{_FOLDED.format('message')} like {_FOLDED.format('{pattern:String}')}"]
    params: dict[str, Value] = {"pattern": like_pattern(text)}
    piece = max(_SIGMAS.split(text), key=len)
    if piece:
        conditions.insert(0, "lowerUTF8(message) like lowerUTF8({piece:String})")
        params["piece"] = like_pattern(piece)
    return conditions, params


class LogQueries:
    """The job-log reads; every query runs through ``queries`` (metrics, cluster tables, backend)."""

    def __init__(self, queries: Queries):
        self.queries = queries

    def log_state(self, job: JobRef, timeout: float) -> LogState:
        [[logged, counted, stored]] = self.queries.rows("job_log_state", LOG_STATE, job.params(), timeout)
        state = LogState(bool(logged), int(counted), int(stored))
        if not state.lines_expired:
            return state
        [[may]] = self.queries.rows("job_log_expiry", MAY_HAVE_EXPIRED, job.params(), timeout)
        return dataclasses.replace(state, may_have_expired=bool(may))

    def job_exists(self, job: JobRef, timeout: float) -> bool:
        """Whether any job event of it landed (for a job that never logged)."""
        [[exists]] = self.queries.rows("job_exists", JOB_EXISTS, job.params(), timeout)
        return bool(exists)

    def tail_state(self, job: JobRef, timeout: float) -> TailState:
        [[known, ended, ago_ms]] = self.queries.rows("job_tail_state", TAIL_STATE, job.params(), timeout)
        return TailState(bool(known), bool(ended), None if ago_ms is None else int(ago_ms))

    def sized_page(
        self,
        job: JobRef,
        where: LogFilter,
        descending: bool,
        after: LogPosition | None,
        limit: int,
        budget: int,
        timeout: float,
    ) -> tuple[list[LogRow], bool]:
        """Up to ``limit`` of the job's lines in the table's order (or backwards), after ``after``,
        up to the first that starts past ``budget`` bytes (LINE_BYTES); and whether the budget left
        out lines of the ``limit`` (then lines follow the last one).

        A page cut to what a client takes after the query read only the lines it may send, not up
        to 5,000 lines of a MiB. Bytes that are not UTF-8 come back shorter than they are stored
        (a run of them as one U+FFFD), so the answer says itself whether lines were left out.
        """
        lines, order, params = self._lines(job, where, descending, after, limit)
        sql = f"""select
    {LINE_COLUMNS},
    available
from (
    select *, sum({LINE_BYTES}) over (order by {order} rows between unbounded preceding and 1 preceding)
        as bytes_before, count() over () as available
    from (select event_id, event_time, stream, sequence, message, dedup_key, ingested_at {lines})
)
where bytes_before <= {{budget:UInt64}}
order by {order}"""
        answer = self.queries.rows("job_log_page", sql, {**params, "budget": budget}, timeout)
        rows = [LogRow.parse(row[:-1]) for row in answer]
        return rows, bool(answer) and int(answer[0][-1]) > len(rows)

    def _lines(
        self, job: JobRef, where: LogFilter, descending: bool, after: LogPosition | None, limit: int
    ) -> tuple[str, str, dict[str, Value]]:
        """The FROM ... LIMIT of a page, its order and its parameters."""
        conditions = [JOB, "is_line = true"]
        params: dict[str, Value] = {**job.params(), "limit": limit}
        if where.stream is not None:
            conditions.append("lower(stream) = {stream:String}")
            params["stream"] = where.stream
        if where.start is not None:
            conditions.append("event_time >= fromUnixTimestamp64Milli({start_ms:Int64}, 'UTC')")
            params["start_ms"] = where.start
        if where.end is not None:
            conditions.append("event_time < fromUnixTimestamp64Milli({end_ms:Int64}, 'UTC')")
            params["end_ms"] = where.end
        if where.contains is not None:
            found, asked = contains_conditions(where.contains)
            conditions += found
            params.update(asked)
        if after is not None:
            beyond, bound = ("<", "<=") if descending else (">", ">=")
            # The first condition narrows the primary-key range; the tuple is the exact resume point.
            conditions.append(f"assumeNotNull(sequence) {bound} {{after_sequence:UInt64}}")
            conditions.append(
                f"({', '.join(LINE_ORDER)}) {beyond} ({{after_sequence:UInt64}},"
                " fromUnixTimestamp64Milli({after_ms:Int64}, 'UTC'), unhex({after_key:String}))"
            )
            params.update(after_sequence=after.sequence, after_ms=after.time_ms, after_key=after.key)
        direction = " desc" if descending else ""
        order = ", ".join(column + direction for column in LINE_ORDER)
        lines = f"""from {LOG_EVENTS}
where {" and ".join(conditions)}
order by {order}
limit 1 by dedup_key
limit {{limit:UInt32}}"""
        return lines, order, params

    @staticmethod
    def _tailed(jobs: list[JobRef], since_ms: int, **more: Value) -> dict[str, Value]:
        return {"jobs": [(job.user_id, job.workflow_id, job.job_id) for job in jobs], "since_ms": since_ms, **more}

    def landed_since(self, jobs: list[JobRef], since_ms: int, timeout: float) -> dict[JobRef, list[LogRow]]:
        """Lines of these jobs whose rows landed at or after ``since_ms`` (ClickHouse's clock), by job."""
        found: dict[JobRef, list[LogRow]] = {}
        for row in self.queries.rows("job_log_tail", LANDED_SINCE, self._tailed(jobs, since_ms), timeout):
            found.setdefault(jobs[int(row[0]) - 1], []).append(LogRow.parse(row[1:]))
        return found

    def landed_keys(self, jobs: list[JobRef], since_ms: int, timeout: float) -> dict[JobRef, set[str]]:
        """The keys alone of what ``landed_since`` would return, by job."""
        found: dict[JobRef, set[str]] = {}
        for index, key in self.queries.rows("job_log_tail_keys", LANDED_KEYS, self._tailed(jobs, since_ms), timeout):
            found.setdefault(jobs[int(index) - 1], set()).add(key)
        return found

    def landed_lines(
        self, jobs: list[JobRef], since_ms: int, keys: list[str], timeout: float
    ) -> dict[JobRef, list[LogRow]]:
        """The lines of these keys among what ``landed_since`` would return, by job."""
        found: dict[JobRef, list[LogRow]] = {}
        params = self._tailed(jobs, since_ms, keys=keys)
        for row in self.queries.rows("job_log_tail_lines", LANDED_LINES, params, timeout):
            found.setdefault(jobs[int(row[0]) - 1], []).append(LogRow.parse(row[1:]))
        return found

    def ended(self, jobs: list[JobRef], timeout: float) -> tuple[int, set[JobRef]]:
        """(ClickHouse's clock now in ms, which of these jobs have ended)."""
        params: dict[str, Value] = {"jobs": [(job.user_id, job.workflow_id, job.job_id) for job in jobs]}
        [[now_ms, ended]] = self.queries.rows("job_ends", ENDED, params, timeout)
        return int(now_ms), {JobRef(*job) for job in ended}
