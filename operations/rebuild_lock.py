"""One rebuild of days at a time on a ClickHouse server.

A rebuild corrects workflow_totals and job_log_totals with delta rows, correct minus current
counters (dbt_project/macros/rebuild.sql). Two rebuilds of the same days at once each read the
counters before the other's deltas and both insert theirs: the days are corrected twice. So a
rebuild holds a lock for its length, and a second waits for it; whichever path starts it
(`analytics backfill`, Dagster's `daily_reconciliation`, the nightly schedule).

The lock is a table: `CREATE TABLE` of a name that exists fails, and one creator of it wins,
atomically, on any ClickHouse. The table's comment says who holds it (host, process, since), and
dropping it releases it. A holder that died without dropping it (`kill -9`) is recognised, on its
own host, by its process being gone (or its pid now another process's), and elsewhere by its age
(STALE_AFTER_S): the lock is then taken over. A holder alive on this host keeps it however long it
takes. Of the waiters that find the same dead holder, one takes it over: each first creates a
marker table named after that holder, and only the one that creates it drops the dead lock (a
second waiter dropped the lock the first had just taken, and both rebuilt at once). On a cluster
the lock is the server's that the rebuild's connection reaches.

A rebuild's statements carry the holder's `log_comment` (`statements` in its JSON; dbt sends it
with each statement, profiles.yml). A dbt that was stopped, or killed with its holder, leaves its
statement running on the server, and a rebuild that started meanwhile read the counters before
that statement's deltas landed and inserted its own: the days corrected twice. So the lock is
released, and a dead holder's taken over, only once the holder's statements have ended.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator

from core import names
from core.clickhouse import connect
from core.errors import Code
from core.settings.schema import SchemaSettings

log = logging.getLogger(__name__)

WAIT_S = 900.0  # how long a rebuild waits for another to finish (a year of days takes seconds)
STALE_AFTER_S = 3600.0  # a lock this old, held from another host, is taken to be a dead holder's
POLL_S = 0.5
STATEMENTS_END_S = 300.0  # how long a holder's statements may still run, after it, before they are killed


class RebuildBusy(RuntimeError):
    """Another rebuild held the lock for longer than this one would wait (operations.backfill
    raises it as BackfillFailed)."""


def _holder() -> dict:
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": _process_started(os.getpid()),
        "since": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "statements": f"analytics rebuild {uuid.uuid4().hex[:16]}",  # their log_comment
    }


def _process_started(pid: int) -> str | None:
    """When the process started, in clock ticks since boot (Linux's /proc), to tell a reused pid."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _stale(holder: dict, now: dt.datetime, stale_after_s: float) -> bool:
    if holder.get("host") == socket.gethostname():
        try:
            pid = int(holder["pid"])
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False  # alive, another user's
        except (KeyError, ValueError, TypeError):
            pass  # not a pid: judged by its age below
        else:
            started = holder.get("started")
            return started is not None and started != _process_started(pid)  # else alive: however long
    try:
        since = dt.datetime.fromisoformat(holder["since"])
    except (KeyError, ValueError, TypeError):
        return True  # not a lock this code wrote
    return (now - since).total_seconds() > stale_after_s


@contextlib.contextmanager
def rebuild_lock(
    settings: SchemaSettings,
    wait_s: float = WAIT_S,
    stale_after_s: float = STALE_AFTER_S,
    sleep: Callable[[float], None] = time.sleep,
    statements_end_s: float = STATEMENTS_END_S,
) -> Iterator[str]:
    """Hold the server's rebuild lock for the block, which gets the log_comment its statements
    must carry; RebuildBusy if another holds it past `wait_s`."""
    from clickhouse_connect.driver.exceptions import DatabaseError

    table = f"{names.DATABASE}.{names.REBUILD_LOCK}"
    with connect.session(settings.clickhouse_connection) as client:
        deadline = time.monotonic() + wait_s
        said = False
        while True:
            mine = json.dumps(_holder())  # since now: a waiter's lock starts when it is taken
            try:
                client.command(
                    f"CREATE TABLE {table} (holder String) ENGINE = Memory COMMENT %(holder)s",
                    parameters={"holder": mine},
                )
                break
            except DatabaseError as error:
                if f"Code: {Code.TABLE_ALREADY_EXISTS.value}." not in str(error):
                    raise
            holder = _current(client)
            if holder is None:
                continue  # released meanwhile
            if _stale(holder, dt.datetime.now(dt.UTC), stale_after_s):
                if _take_over(client, holder):
                    log.warning("taking over the rebuild lock of %s: its holder is gone", holder)
                    _end_statements(client, holder.get("statements"), statements_end_s, sleep)
                    client.command(f"DROP TABLE IF EXISTS {table} SYNC")
                continue
            if time.monotonic() > deadline:
                raise RebuildBusy(
                    f"another rebuild has held the lock since {holder.get('since')} ({holder.get('host')}, "
                    f"process {holder.get('pid')}); if none is running, DROP TABLE {table}"
                )
            if not said:
                log.info("waiting for the rebuild of %s to finish", holder)
                said = True
            sleep(POLL_S)
        held = json.loads(mine)
        try:
            yield held["statements"]
        finally:
            _release(client, table, held, statements_end_s, sleep)


def _release(client, table: str, mine: dict, statements_end_s: float, sleep: Callable[[float], None]) -> None:
    """Drop the lock if it is still ours, once its statements have ended. ClickHouse gone meanwhile
    (what failed the rebuild, most likely) leaves it to be taken over once stale, and must not hide
    the rebuild's own error."""
    from clickhouse_connect.driver.exceptions import ClickHouseError

    try:
        if _current(client) == mine:
            _end_statements(client, mine["statements"], statements_end_s, sleep)
            client.command(f"DROP TABLE IF EXISTS {table} SYNC")
    except (ClickHouseError, OSError) as error:
        log.warning("could not release the rebuild lock (%s); the next rebuild takes it over once stale", error)


def _end_statements(client, comment: str | None, wait_s: float, sleep: Callable[[float], None]) -> None:
    """Wait until no statement carrying ``comment`` (a holder's log_comment) runs on the server;
    past ``wait_s``, kill them and wait for that."""
    if not comment:
        return  # a holder of an older version: its statements cannot be told
    deadline, said = time.monotonic() + wait_s, False
    while running := client.query(
        "SELECT count() FROM system.processes WHERE Settings['log_comment'] = %(comment)s",
        parameters={"comment": comment},
    ).result_rows[0][0]:
        if time.monotonic() > deadline:
            log.warning("killing %d statements of a rebuild still running after %.0fs (%s)", running, wait_s, comment)
            kill = "KILL QUERY WHERE Settings['log_comment'] = %(comment)s SYNC"
            client.command(kill, parameters={"comment": comment})
            return
        if not said:
            log.info("waiting for %d statements of a rebuild that ended to end on the server (%s)", running, comment)
            said = True
        sleep(POLL_S)


def _take_over(client, holder: dict) -> bool:
    """Whether this waiter is the one to take over ``holder``'s lock: the one that creates the
    marker named after it. Markers stay a day (a waiter that read the holder before another took
    the lock over must not take over the lock taken since), then the next takeover drops them."""
    from clickhouse_connect.driver.exceptions import DatabaseError

    digest = hashlib.sha256(json.dumps(holder, sort_keys=True).encode()).hexdigest()[:16]
    for [name] in client.query(  # the old markers first, so that they do not pile up
        "SELECT name FROM system.tables WHERE database = %(database)s AND startsWith(name, %(prefix)s) "
        "AND metadata_modification_time < now() - INTERVAL 1 DAY",
        parameters={"database": names.DATABASE, "prefix": f"{names.REBUILD_LOCK}_taken_"},
    ).result_rows:
        client.command(f"DROP TABLE IF EXISTS {names.DATABASE}.{name} SYNC")
    try:
        client.command(f"CREATE TABLE {names.DATABASE}.{names.REBUILD_LOCK}_taken_{digest} (x UInt8) ENGINE = Memory")
    except DatabaseError as error:
        if f"Code: {Code.TABLE_ALREADY_EXISTS.value}." not in str(error):
            raise
        return False
    return True


def _current(client) -> dict | None:
    rows = client.query(
        "SELECT comment FROM system.tables WHERE database = %(database)s AND name = %(name)s",
        parameters={"database": names.DATABASE, "name": names.REBUILD_LOCK},
    ).result_rows
    if not rows:
        return None
    try:
        return json.loads(rows[0][0])
    except ValueError:
        return {}
