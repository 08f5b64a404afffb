"""One rebuild of days at a time on a ClickHouse server.

A rebuild corrects workflow_totals and job_log_totals with delta rows, correct minus current
counters (dbt_project/macros/rebuild.sql). Two rebuilds of the same days at once each read the
counters before the other's deltas and both insert theirs: the days are corrected twice. So a
rebuild holds a lock for its length, and a second waits for it; whichever path starts it
(`analytics backfill`, Dagster's `daily_reconciliation`, the nightly schedule).

The lock is a table: `CREATE TABLE` of a name that exists fails, and one creator of it wins,
atomically, on any ClickHouse. The table's comment says who holds it (host, process, since), and
dropping it releases it. A holder that died without dropping it (`kill -9`) is recognised, on its
own host, by its process being gone, and elsewhere by its age (STALE_AFTER_S): the lock is then
taken over. On a cluster the lock is the server's that the rebuild's connection reaches.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator

from core import names
from core.clickhouse import connect
from core.errors import Code
from core.settings.schema import SchemaSettings

log = logging.getLogger(__name__)

WAIT_S = 900.0  # how long a rebuild waits for another to finish (a year of days takes seconds)
STALE_AFTER_S = 3600.0  # a lock this old, held from another host, is taken to be a dead holder's
POLL_S = 0.5


class RebuildBusy(RuntimeError):
    """Another rebuild held the lock for longer than this one would wait (operations.backfill
    raises it as BackfillFailed)."""


def _holder() -> dict:
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "since": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def _stale(holder: dict, now: dt.datetime, stale_after_s: float) -> bool:
    if holder.get("host") == socket.gethostname():
        try:
            os.kill(int(holder["pid"]), 0)
        except ProcessLookupError:
            return True
        except (PermissionError, KeyError, ValueError, TypeError):
            pass
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
) -> Iterator[None]:
    """Hold the server's rebuild lock for the block; RebuildBusy if another holds it past `wait_s`."""
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
                log.warning("taking over the rebuild lock of %s: its holder is gone", holder)
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
        try:
            yield
        finally:
            _release(client, table, json.loads(mine))


def _release(client, table: str, mine: dict) -> None:
    """Drop the lock if it is still ours. ClickHouse gone meanwhile (what failed the rebuild, most
    likely) leaves it to be taken over once stale, and must not hide the rebuild's own error."""
    from clickhouse_connect.driver.exceptions import ClickHouseError

    try:
        if _current(client) == mine:
            client.command(f"DROP TABLE IF EXISTS {table} SYNC")
    except (ClickHouseError, OSError) as error:
        log.warning("could not release the rebuild lock (%s); the next rebuild takes it over once stale", error)


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
