"""chDB, owned by this process: the data-directory lock, connections, the pool and sessions.

chDB facts this module is built on (measured on chdb 4.4 / engine 26.9):
  * one process per data directory; a second one fails with ``Cannot lock file .../status``;
  * one connection per thread runs queries in parallel, while one connection shared by threads
    serialises and, with query parameters, can hand a thread another thread's answer; so every
    connection here is used by one request at a time;
  * ``SET`` and ``USE`` change the connection, not a query, so per-request settings are applied
    and later undone by the front.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from chdb import _chdb

from core.backend import WriteLog
from core.errors import Code
from embedded.data_lock import DataDirectoryLock
from embedded.errors import ClickHouseError
from embedded.memory_limit import server_memory_limit
from embedded.sessions import Session
from embedded.sqltext import quote_identifier, quote_string

log = logging.getLogger(__name__)

# chDB's server configuration, written into the data directory at every start.
SERVER_CONFIG_FILE = "embedded-server.xml"
# clickhouse-local makes `default` an overlay of an Atomic database and a Filesystem one that reads any
# file the process can reach as a table ("SELECT * FROM `/etc/passwd`"). With no default_database in
# the configuration chDB creates no overlay, and `default` is the plain Atomic database below.
_SERVER_CONFIG = """<clickhouse>
    <!-- Written by the embedded ClickHouse at every start: `default` is a plain Atomic database
         (metadata/default.sql), not clickhouse-local's overlay that reads files as tables. -->
    <default_database></default_database>
    <!-- The first-seen gate's keys are random and kept for ever. Under RocksDB's default (levelled)
         compaction a store that small lives in one level, and each compaction of the files the
         inserts ingest rewrites all of it: the CPU per insert grew with every key ever stored.
         Universal compaction rewrites each key a few times in all (docs/performance.md, "The gate's store"). -->
    <!-- Most keys a gate looks up are new: a Bloom filter answers "absent" without reading a data
         block, and a larger block cache keeps the blocks the stored keys are read from. 37,800 new
         keys at 5 million stored took 145 ms without them, 51 ms with them (docs/performance.md, "The gate's
         store"). EmbeddedRocksDB reads these table options for every table; seen_keys is the only one. -->
    <rocksdb>
        <block_based_table_options>
            <filter_policy>bloomfilter:10:false</filter_policy>
            <block_cache>67108864</block_cache>
        </block_based_table_options>
        <tables>
            <table>
                <name>seen_keys</name>
                <column_family_options>
                    <compaction_style>kCompactionStyleUniversal</compaction_style>
                </column_family_options>
            </table>
        </tables>
    </rocksdb>
</clickhouse>
"""


def server_config(max_server_memory_usage: int | None) -> str:
    """chDB's configuration: _SERVER_CONFIG, and the memory limit a cgroup sets (embedded.memory_limit)."""
    if max_server_memory_usage is None:
        return _SERVER_CONFIG
    limit = f"    <max_server_memory_usage>{max_server_memory_usage}</max_server_memory_usage>\n"
    return _SERVER_CONFIG.replace("</clickhouse>", limit + "</clickhouse>")


# The embedded server's default profile, as a ClickHouse server's users.xml would set it.
# Requests may still override any of these.
DEFAULT_PROFILE = {
    # JSON input is read strictly, so the HTTP intake refuses what the event contract refuses (a
    # number, a boolean, an array or an object where a string belongs) instead of turning it into
    # text, and strings are never guessed to be dates.
    "input_format_json_read_numbers_as_strings": "0",
    "input_format_json_read_bools_as_strings": "0",
    "input_format_json_read_arrays_as_strings": "0",
    "input_format_json_read_objects_as_strings": "0",
    "input_format_try_infer_dates": "0",
    "input_format_try_infer_datetimes": "0",
    # A view's block is written as it is, not first merged as its table's engine would merge it:
    # every view already hands its table one row per key (LIMIT 1 BY dedup_key, GROUP BY the
    # table's key), so that merge found nothing to fold and cost a block of the whole chain 714 ->
    # 683-692 ms (docs/performance.md, "Each block written as it is"). No reader sees a difference.
    "optimize_on_insert": "0",
    # Events of any time may arrive in one insert (a backlog, a replay of history), and the raw
    # tables are partitioned by the event's month (job logs by its day): ClickHouse's default
    # limit of 100 partitions an insert refused a valid batch of logs spanning 101 days.
    "max_partitions_per_insert_block": "0",
}
_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _reset(name: str) -> str:
    """Undo a request's setting: back to the profile's value, else ClickHouse's default."""
    return f"{name} = {DEFAULT_PROFILE[name]}" if name in DEFAULT_PROFILE else f"{name} = DEFAULT"


def engine_error(error: BaseException) -> ClickHouseError:
    return error if isinstance(error, ClickHouseError) else ClickHouseError.from_engine(error)


@dataclass
class Connection:
    """One chDB connection and what the front has changed on it.

    ``database`` and ``applied`` let a pooled connection skip ``USE`` and ``SET`` when the next
    request wants what the last one had; ``reusable`` turns false when a statement may have left
    state the front does not track (a user's own SET, USE or temporary table).
    """

    raw: object
    database: str = "default"
    applied: dict[str, str] = field(default_factory=dict)
    reusable: bool = True

    def query(self, sql: str | bytes, fmt: str = "TabSeparated", params: dict[str, str] | None = None):
        try:
            return self.raw.query(sql, fmt, params=params or {})
        except (RuntimeError, UnicodeDecodeError) as error:
            raise ClickHouseError.from_engine(error) from None

    def classify(self, sql: str) -> str:
        """READ_ONLY, MUTATING, MUTATING_GLOBAL, CONTROL or UNKNOWN, by chDB's own parser; UNPARSED
        when that parser cannot read the statement (running it gives ClickHouse's syntax error)."""
        found = self.raw.classify_query(sql)
        return "UNPARSED" if found["statement_count"] == 0 else found["query_class"].name

    def raise_syntax_error(self, sql: str) -> None:
        """ClickHouse's syntax error for ``sql``, found by parsing it alone (formatQuery runs
        nothing); returns if it parses here after all."""
        self.query(f"SELECT formatQuery({quote_string(sql)})")

    def stream(self, sql: str | bytes, fmt: str, params: dict[str, str] | None = None) -> ResultStream:
        try:
            handle = self.raw.send_query(sql, fmt, params=params or {})
        except (RuntimeError, UnicodeDecodeError) as error:
            raise ClickHouseError.from_engine(error) from None
        return ResultStream(self, handle)

    def use(self, database: str) -> None:
        if database != self.database:
            self.query(f"USE {quote_identifier(database)}")
            self.database = database

    def apply_settings(self, settings: dict[str, str]) -> None:
        """Make exactly ``settings`` (on top of the defaults) the front's settings on this connection."""
        changes = [_reset(name) for name in self.applied.keys() - settings.keys()]
        changes += [
            f"{name} = {quote_string(value)}" for name, value in settings.items() if self.applied.get(name) != value
        ]
        if not changes:
            return
        for name in settings:
            if not _SETTING_NAME.match(name):
                raise ClickHouseError.of(Code.UNKNOWN_SETTING, f"Unknown setting '{name}'")
        try:
            self.query("SET " + ", ".join(changes))
        except ClickHouseError:
            self.reusable = False  # some of the list may have been applied
            raise
        self.applied = dict(settings)

    def settings_snapshot(self, names) -> dict[str, tuple[str, bool]]:
        """Current value and changed-flag of the named settings."""
        result = self.query(
            "SELECT name, value, changed FROM system.settings WHERE name IN {names:Array(String)}",
            "JSONCompactEachRow",
            params={"names": "[" + ",".join(quote_string(n) for n in names) + "]"},
        )
        return {row[0]: (row[1], bool(row[2])) for row in map(json.loads, result.bytes().decode().splitlines())}

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.raw.close()


class ResultStream:
    """Chunks of a streaming query; each chunk is a complete piece of the output format."""

    def __init__(self, connection: Connection, handle):
        self._connection = connection
        self._handle = handle
        self.done = False
        self.rows = 0
        self.bytes = 0
        self.transform: Callable[[bytes], bytes] | None = None  # applied to every chunk (e.g. Native framing)

    def next_chunk(self) -> bytes | None:
        if self.done:
            return None
        try:
            result = self._connection.raw.streaming_fetch_result(self._handle)
        except (RuntimeError, UnicodeDecodeError) as error:
            self.done = True
            raise ClickHouseError.from_engine(error) from None
        if result is None or result.rows_read() == 0:
            self.done = True
            return None
        self.rows += result.rows_read()
        data = result.bytes()
        if self.transform is not None:
            data = self.transform(data)
        self.bytes += len(data)
        return data

    def cancel(self) -> None:
        if not self.done:
            self.done = True
            with contextlib.suppress(Exception):
                self._connection.raw.streaming_cancel_query(self._handle)


class Engine:
    """The chDB instance of this process."""

    def __init__(self, data_dir: Path, pool_size: int = 16):
        self.data_dir = Path(data_dir)
        self.pool_size = pool_size
        self._lock = DataDirectoryLock(self.data_dir)
        self._idle: list[Connection] = []
        self._idle_guard = threading.Lock()
        self.sessions: dict[tuple[str, str], Session] = {}
        self.version = ""
        self.timezone = "UTC"
        self.display_name = ""
        self.tmp_dir = self.data_dir / "tmp" / "http"
        # What clients' file() may read and write, as a server's user_files_path (see embedded.fence).
        self.user_files = self.data_dir / "user_files"
        self._connection_string = str(self.data_dir)
        self._open = False
        # Every write that ends, counted by the HTTP front: the only way data gets in.
        self.writes = WriteLog()

    # -- life cycle -------------------------------------------------------------------------
    def open(self) -> None:
        self._lock.acquire()
        try:
            self._connection_string = self._configure()
            first = self._connect()
            row = first.query("SELECT version(), timezone(), hostName()", "TabSeparated").bytes()
            self.version, self.timezone, self.display_name = row.decode().rstrip("\n").split("\t")
        except BaseException:
            self._lock.release()
            raise
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self.user_files.mkdir(exist_ok=True)
        for stale in self.tmp_dir.iterdir():  # leftovers of a killed process
            with contextlib.suppress(OSError):
                stale.unlink()
        self._idle.append(first)
        self._open = True

    def close(self) -> None:
        """Close every connection and release the data directory."""
        if not self._open:
            return
        self._open = False
        for session in list(self.sessions.values()):
            session.connection.close()
        self.sessions.clear()
        with self._idle_guard:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()
        self._lock.release()
        log.info("closed chDB and released %s", self.data_dir)

    def _configure(self) -> str:
        """Write chDB's configuration and the plain `default` database; the connection string that uses them."""
        metadata = self.data_dir / "metadata"
        definition = metadata / "default.sql"
        if not definition.exists():
            # Keep the UUID of the Atomic half of an existing overlay, so its tables stay where they are.
            link = metadata / "default"
            database_uuid = link.resolve().name if link.is_symlink() else str(uuid.uuid4())
            metadata.mkdir(parents=True, exist_ok=True)
            partial = definition.with_suffix(".sql.tmp")
            partial.write_text(f"ATTACH DATABASE _ UUID '{database_uuid}'\nENGINE = Atomic\n")
            partial.rename(definition)
        config = self.data_dir / SERVER_CONFIG_FILE
        config.write_text(server_config(server_memory_limit()))
        return f"{self.data_dir}?config-file={config}&database=default"

    def table_functions(self) -> list[str]:
        with self.connection() as connection:
            return connection.query("SELECT name FROM system.table_functions").bytes().decode().split()

    # -- connections ------------------------------------------------------------------------
    def _connect(self) -> Connection:
        try:
            connection = Connection(_chdb.connect(self._connection_string))
        except RuntimeError as error:
            raise engine_error(error) from None
        connection.query("SET " + ", ".join(f"{name} = {value}" for name, value in DEFAULT_PROFILE.items()))
        return connection

    def new_connection(self) -> Connection:
        """A fresh connection that is never pooled (read-only requests)."""
        connection = self._connect()
        connection.reusable = False
        return connection

    def acquire(self) -> Connection:
        return self.acquire_idle() or self._connect()

    def acquire_idle(self) -> Connection | None:
        """A pooled connection if one is free (cheap: no chDB call)."""
        with self._idle_guard:
            return self._idle.pop() if self._idle else None

    def release(self, connection: Connection) -> None:
        if not self.release_to_pool(connection):
            connection.close()

    def release_to_pool(self, connection: Connection) -> bool:
        """Put a reusable connection back (cheap); False when it must be closed instead."""
        if connection.reusable and self._open:
            with self._idle_guard:
                if len(self._idle) < self.pool_size:
                    self._idle.append(connection)
                    return True
        return False

    @contextlib.contextmanager
    def connection(self) -> Iterator[Connection]:
        """A pooled connection for in-process use (tests, benchmarks, the launcher)."""
        connection = self.acquire()
        try:
            yield connection
        finally:
            self.release(connection)

    def kill_marked_reading(self, marker: str) -> None:
        """Cancel the read-only statements running with this ``log_comment`` (embedded.kill_marks)."""
        with self.connection() as connection:
            connection.query(
                "KILL QUERY WHERE Settings['log_comment'] = {marker:String}"
                " AND query_kind IN ('Select', 'Explain', 'Show', 'Describe', 'Exists') ASYNC FORMAT Null",
                params={"marker": marker},
            )

    # -- sessions (called from the event loop thread only) ----------------------------------
    def session(self, user: str, session_id: str, timeout: float, create: bool) -> Session | None:
        key = (user, session_id)
        session = self.sessions.get(key)
        if session is None:
            if not create:
                return None
            if len(session_id) > 256:
                raise ClickHouseError.of(Code.BAD_ARGUMENTS, "Session id is longer than 256 characters")
            session = Session(session_id, self._connect(), timeout)
            self.sessions[key] = session
        session.timeout = timeout
        return session

    def end_session(self, user: str, session: Session) -> bool:
        """Forget the session now (its connection is the caller's to close); False if already gone."""
        if self.sessions.get((user, session.session_id)) is session:
            del self.sessions[(user, session.session_id)]
            return True
        return False

    def expired_sessions(self) -> list[Session]:
        now = time.monotonic()
        expired = [key for key, s in self.sessions.items() if not s.busy and s.expires_at < now]
        return [self.sessions.pop(key) for key in expired]
