"""What the serving model (server/serving.py) reads: its full reads, its polls of workflow_changes
by block number, and the state of the tables it must not read past (a mutation still running).
"""

from __future__ import annotations

from core.backend import QueryBackend
from core.names import sql
from server.queries import (
    BUCKETS,
    COUNTER_COLUMNS,
    KIND,
    NO_PERCENTILES,
    PERCENTILES,
    PERCENTILES_FLOAT64,
    ZERO_COUNTERS,
    percentiles_of,
)
from server.series import Series, series_of

# Block numbers of a MergeTree table are taken as its parts commit, in commit order: every row
# committed after the newest block seen is in a part whose range ends beyond it. Merged parts
# span ranges (partition_min_max_level[_mutation]; workflow_changes has the one partition `all`).
NEWEST_BLOCK = """select toInt64(ifNull(max(max_block_number), 0))
from system.parts
where database = 'analytics' and table = 'workflow_changes' and active"""

# Mutations of the tables the model reads still to run (ALTER ... UPDATE/DELETE returns before
# they have, unless mutations_sync is set): a full read until then may hold numbers about to change.
PENDING_MUTATIONS = """select count()
from system.mutations
where database = 'analytics' and table in ('workflow_totals', 'workflow_daily', 'job_duration_daily')
  and not is_done"""

# Over HTTP, where no write log counts the other writers' statements: what changes when the tables
# the model reads change other than by an insert. A mutation adds a row to system.mutations and is
# counted again once done (ALTER ... UPDATE/DELETE, lightweight DELETE); TRUNCATE, DROP PARTITION or
# a TTL removes parts, so the first block of a partition changes or the partition is gone. Merges
# and inserts change neither. (The first insert into a new partition does: one full read more.)
OTHER_CHANGES = """select toInt64(cityHash64(
    (select (count(), countIf(is_done)) from system.mutations
     where database = 'analytics' and table in ('workflow_totals', 'workflow_daily', 'job_duration_daily')),
    (select groupBitXor(cityHash64(table, partition_id, first_block)) from (
        select table, partition_id, min(min_block_number) as first_block from system.parts
        where database = 'analytics' and table in ('workflow_totals', 'workflow_daily', 'job_duration_daily')
          and active
        group by table, partition_id))))"""

# What the model holds of each workflow: its counters and kind, as the listing reads them (server/queries.py).
MODEL_SELECT = sql(f"""select
    user_id,
    workflow_id,
    toInt64(sum(jobs)),
    toInt64(sum(joblogs)),
    toInt64(sum(job_execution_seconds)),
    toInt64(sum(jobs_completed)),
    toInt64(sum(jobs_failed)),
    toInt64(sum(jobs_cancelled)),
    {KIND}
from $workflow_totals""")

EVERY_WORKFLOW = (
    MODEL_SELECT
    + """
group by user_id, workflow_id
limit {limit:UInt64}"""
)

# The rows of workflow_changes in the parts whose block ranges end after ``after`` and begin at
# or before ``upto``: the keys the inserts committed in between touched.
CHANGED_IN_BLOCKS = """from analytics.workflow_changes
    where toInt64(splitByChar('_', _part)[3]) > {after:Int64}
      and toInt64(splitByChar('_', _part)[2]) <= {upto:Int64}"""

CHANGED_WORKFLOWS = (
    MODEL_SELECT
    + f"""
where (user_id, workflow_id) in (
    select user_id, workflow_id
    {CHANGED_IN_BLOCKS}
)
group by user_id, workflow_id"""
)


# Each user's duration percentiles over all time (p50, p90, p95, p99), as Queries.percentiles reads them.
PERCENTILES_SELECT = sql(f"""select user_id, {PERCENTILES_FLOAT64}
from $job_duration_daily""")

EVERY_USERS_PERCENTILES = (
    PERCENTILES_SELECT
    + """
group by user_id"""
)

CHANGED_USERS_PERCENTILES = (
    PERCENTILES_SELECT
    + f"""
where user_id in (
    select user_id
    {CHANGED_IN_BLOCKS}
)
group by user_id"""
)


# Each user's buckets of every granularity (server/series.py), as Queries.time_series computes
# them for one user: a row per bucket with counters, and one with its percentiles. Each daily row
# is counted once per granularity, in the bucket of that granularity holding its day.
_GRANULARITIES = ", ".join(f"'{name}'" for name in BUCKETS)
_BUCKETS = ", ".join(BUCKETS.values())


def _series(users: str) -> str:
    """The series of the users ``users`` (a condition on user_id) selects."""

    def grouped(part: str, columns: str, table: str) -> str:
        return f"""select '{part}', user_id, granularity, toInt32(bucket), {columns}
    from {table}
    array join [{_GRANULARITIES}] as granularity, [{_BUCKETS}] as bucket
    where {users}
    group by user_id, granularity, bucket"""

    counters = grouped("counters", f"{COUNTER_COLUMNS}, {NO_PERCENTILES}", "$workflow_daily")
    durations = grouped("durations", f"{ZERO_COUNTERS}, {PERCENTILES}", "$job_duration_daily")
    return sql(f"select * from (\n{counters}\nunion all\n{durations}\n)")


# Every user's, in parts by a hash of the user id (``part`` of ``parts``), so that the rows in
# Python at once stay a part's: a long history is read a few hundred thousand buckets at a time.
EVERY_USERS_SERIES = _series("cityHash64(user_id) % {parts:UInt64} = {part:UInt64}")
# How many buckets (counter rows) EVERY_USERS_SERIES would give, counted before it is read.
SERIES_BUCKETS = sql(f"""select {" + ".join(f"uniqExact(user_id, {bucket})" for bucket in BUCKETS.values())}
from $workflow_daily""")
CHANGED_USERS_SERIES = _series(f"user_id in (select user_id {CHANGED_IN_BLOCKS})")


def one_number(backend: QueryBackend, select: str, timeout: float) -> int:
    """The one number a statement answers (NEWEST_BLOCK, PENDING_MUTATIONS)."""
    [[number]] = backend.rows(select, {}, timeout)
    return int(number)


def users_percentiles(backend: QueryBackend, select: str, params: dict, timeout: float) -> dict:
    """Each user's duration percentiles a read gives; a user without a finished job is left out."""
    found = ((row[0], percentiles_of(row[1])) for row in backend.rows(select, params, timeout))
    return {user_id: values for user_id, values in found if values is not None}


def every_users_series(backend: QueryBackend, buckets: int, part: int, timeout: float) -> dict[str, dict[str, Series]]:
    """Every user's series (EVERY_USERS_SERIES), of ``buckets`` in all, read in parts of about ``part``."""
    parts = max(1, -(-buckets // part))
    series: dict[str, dict[str, Series]] = {}
    for number in range(parts):
        series.update(series_of(backend.rows(EVERY_USERS_SERIES, {"parts": parts, "part": number}, timeout)))
    return series
