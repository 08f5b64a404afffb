"""The job-log benchmark's data: 50,000 jobs of 1,000 lines and one job of 100,000 lines, filled
straight from numbers() with the views on job_log_events other than job_log_totals' detached, and
bench_grpc's 1,000,000 workflows (bench_job_logs.py says what it measures on them)."""

from __future__ import annotations

import time

import urllib3

from benchmarks.bench_grpc import FILL as FILL_WORKFLOWS
from benchmarks.bench_grpc import TOP_UP, USERS, WORKFLOWS
from tests.intake import execute, query

JOBS = 50_000
LINES_PER_JOB = 1_000
BIG_JOB_LINES = 100_000
FILL_CHUNK = 5_000_000
MERGE_WAIT = 900  # seconds
LONG = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=5, read=3600))
RARE_WORDS = 400  # in the big job, each once; every search asks for another one
DETACHED = (
    "seen_keys_from_job_log_events_mv",
    "workflow_totals_from_job_log_events_mv",
    "workflow_daily_from_job_log_events_mv",
)

WORDS = (
    "['GET','POST','served','request','worker','cache','miss','retry','took','bytes','user','ok','INFO','DEBUG','warn']"
)
FILL_LINES = """
insert into analytics.job_log_events
    (event_id, event_time, user_id, workflow_id, job_id, count, stream, sequence, message, is_line,
     kafka_topic, ingested_at, dedup_key)
select
    concat('e-', toString(number)) as event_id,
    now64(3, 'UTC') - toIntervalDay(25)
        + toIntervalMillisecond(intDiv(number, {lines}) * intDiv(2160000000, {jobs}) + number % {lines} * 40),
    concat('user-', toString(intDiv(number, {lines}) % {users})),
    concat('wf-', toString(intDiv(number, {lines}) % {workflows})),
    concat('job-', toString(intDiv(number, {lines}))),
    1,
    if(number % 7 = 0, 'stderr', 'stdout'),
    number % {lines},
    concat(toString(number % 86400000), ' req=', hex(cityHash64(number)), ' ',
           arrayStringConcat(arrayMap(i -> {words}[1 + cityHash64(number, i) % 15], range(8)), ' '),
           ' n=', toString(cityHash64(number, 99) % 1000000)),
    true,
    'job_logs',
    now64(3, 'UTC') - toIntervalDay(1),
    sipHash128('job_logs', concat('e-', toString(number)))
from numbers({offset}, {rows})
"""
FILL_BIG_JOB = f"""
insert into analytics.job_log_events
    (event_id, event_time, user_id, workflow_id, job_id, count, stream, sequence, message, is_line,
     kafka_topic, ingested_at, dedup_key)
select
    concat('big-', toString(number)),
    now64(3, 'UTC') - toIntervalDay(2) + toIntervalMillisecond(number * 100),
    'user-big', 'wf-big', 'job-big', 1,
    if(number % 7 = 0, 'stderr', 'stdout'),
    number,
    concat(toString(number), ' req=', hex(cityHash64(number)), ' ',
           if(number % {BIG_JOB_LINES // RARE_WORDS} = 17,
              concat('rare', toString(intDiv(number, {BIG_JOB_LINES // RARE_WORDS})), 'qx exploded'),
              arrayStringConcat(arrayMap(i -> {WORDS}[1 + cityHash64(number, i) % 15], range(8)), ' '))),
    true, 'job_logs', now64(3, 'UTC') - toIntervalDay(1),
    sipHash128('job_logs', concat('big-', toString(number)))
from numbers({BIG_JOB_LINES})
"""


def run(http, statement: str) -> None:
    """A statement that may take minutes on a shared machine (the intake's client waits two)."""
    response = LONG.request("POST", http.url + "/", body=statement.encode())
    assert response.status == 200, response.data.decode()[:2000]


def fill(http, jobs: int) -> None:
    started = time.perf_counter()
    run(http, FILL_WORKFLOWS)
    run(http, TOP_UP)
    for view in DETACHED:
        execute(http, f"detach table analytics.{view}")
    try:
        total = jobs * LINES_PER_JOB
        for offset in range(0, total, FILL_CHUNK):
            statement = FILL_LINES.format(
                lines=LINES_PER_JOB,
                jobs=jobs,
                users=USERS,
                workflows=WORKFLOWS,
                words=WORDS,
                offset=offset,
                rows=min(FILL_CHUNK, total - offset),
            )
            run(http, statement)
        run(http, FILL_BIG_JOB)
    finally:
        for view in DETACHED:
            execute(http, f"attach table if not exists analytics.{view}")
    # Background merges of the fill's parts would run through the measurements: let them finish.
    waited = time.perf_counter()
    while time.perf_counter() - waited < MERGE_WAIT:
        [merging] = query(http, "select count() as n from system.merges where table = 'job_log_events'")
        if int(merging["n"]) == 0:
            break
        time.sleep(5)
    [sizes] = query(
        http,
        "select count() as lines, uniqExact(job_id) as jobs from analytics.job_log_events",
    )
    [parts] = query(
        http,
        "select count() as parts, sum(bytes_on_disk) as bytes, sum(secondary_indices_compressed_bytes) as index_bytes"
        " from system.parts where database = 'analytics' and table = 'job_log_events' and active",
    )
    print(f"filled in {time.perf_counter() - started:.0f}s: {sizes}, {parts}", flush=True)
