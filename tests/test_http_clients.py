"""The embedded ClickHouse through unmodified clickhouse-connect: types, inserts, parameters, errors."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from decimal import Decimal

import pandas as pd
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

ALL_TYPES = """
    id UInt64,
    i8 Int8,
    i32 Int32,
    u16 UInt16,
    big Int128,
    f Float64,
    dec Decimal(18, 4),
    s String,
    fs FixedString(4),
    d Date,
    t DateTime64(3),
    u UUID,
    n Nullable(Int32),
    ns Nullable(String),
    a Array(String),
    an Array(Nullable(UInt8)),
    m Map(String, UInt64),
    lc LowCardinality(String),
    b Bool
"""
COLUMNS = ["id", "i8", "i32", "u16", "big", "f", "dec", "s", "fs", "d", "t", "u", "n", "ns", "a", "an", "m", "lc", "b"]


def sample_rows(count: int) -> list[list]:
    rows = []
    for i in range(count):
        rows.append(
            [
                i,
                -(i % 128),
                -2_000_000_000 + i,
                i % 65_536,
                -(2**100) + i,
                i / 7,
                Decimal(i) / Decimal(16),
                f"row {i} \t with 'quotes' \\ and ünïcode",
                b"ab\x00" + bytes([i % 256]),
                dt.date(2024, 1, 1) + dt.timedelta(days=i % 400),
                dt.datetime(2024, 2, 29, 23, 59, 59, (i % 1000) * 1000),
                uuid.UUID(int=i * 7919),
                None if i % 3 == 0 else i,
                None if i % 4 == 0 else f"n{i}",
                [f"x{i}", "", "y"],
                [None, i % 256],
                {"k": i, f"key{i % 5}": i * 2},
                f"label{i % 3}",
                i % 2 == 0,
            ]
        )
    return rows


@pytest.fixture
def typed_table(ch):
    ch.command(f"CREATE TABLE typed ({ALL_TYPES}) ENGINE = MergeTree ORDER BY id")
    return ch


def normalised(rows):
    """Rows as clickhouse-connect reads them back, comparable with what was inserted."""
    return [[*row[:8], row[8], *row[9:]] for row in rows]


@pytest.mark.parametrize("compress", [False, "lz4", "zstd", "gzip"])
def test_row_insert_round_trips_every_common_type(clickhouse, compress):
    client = clickhouse.client(compress=compress)
    database = f"rt_{uuid.uuid4().hex[:8]}"
    client.command(f"CREATE DATABASE {database}")
    try:
        client.command(f"CREATE TABLE {database}.typed ({ALL_TYPES}) ENGINE = MergeTree ORDER BY id")
        rows = sample_rows(500)
        client.insert(f"{database}.typed", rows, column_names=COLUMNS)
        back = client.query(f"SELECT {', '.join(COLUMNS)} FROM {database}.typed ORDER BY id").result_rows
        assert [list(row) for row in back] == normalised(rows)
    finally:
        client.command(f"DROP DATABASE {database}")


def test_column_oriented_insert(typed_table):
    rows = sample_rows(300)
    columns = [list(column) for column in zip(*rows, strict=True)]
    typed_table.insert("typed", columns, column_names=COLUMNS, column_oriented=True)
    assert typed_table.query("SELECT count(), sum(id) FROM typed").first_row == (300, sum(range(300)))


def test_dataframe_insert_and_query(ch):
    ch.command(
        "CREATE TABLE frame (id UInt32, name String, score Float64, at DateTime64(3)) ENGINE = MergeTree ORDER BY id"
    )
    frame = pd.DataFrame(
        {
            "id": range(1000),
            "name": [f"name {i}" for i in range(1000)],
            "score": [i * 0.5 for i in range(1000)],
            "at": pd.date_range("2024-01-01", periods=1000, freq="s"),
        }
    )
    ch.insert_df("frame", frame)
    back = ch.query_df("SELECT * FROM frame ORDER BY id")
    assert back["id"].tolist() == frame["id"].tolist()
    assert back["name"].tolist() == frame["name"].tolist()
    assert back["score"].tolist() == frame["score"].tolist()
    assert back["at"].dt.tz_localize(None).tolist() == frame["at"].tolist()


HOSTILE = [
    "plain",
    "it's",
    "back\\slash",
    "quote'); DROP TABLE t; --",
    "tab\tand\nnewline\rcr",
    "{braces} and {x:String}",
    "ünïcödé ✓ 日本",
    "\\N",
    "",
    "'" * 50,
]


@pytest.mark.parametrize("value", HOSTILE)
def test_server_side_parameters_bind_hostile_strings(ch, value):
    assert ch.query("SELECT {v:String}", parameters={"v": value}).result_rows == [(value,)]


def test_server_side_parameters_of_several_types(ch):
    result = ch.query(
        "SELECT {n:UInt64} + 1, {a:Array(String)}, {t:DateTime}, {u:UUID}",
        parameters={"n": 41, "a": ["x", "it's"], "t": dt.datetime(2024, 5, 1, 12, 0, 0), "u": uuid.UUID(int=5)},
    ).result_rows
    assert result == [(42, ["x", "it's"], dt.datetime(2024, 5, 1, 12, 0, 0), uuid.UUID(int=5))]


def test_parameters_filter_rows(ch):
    ch.command("CREATE TABLE people (name String, age UInt8) ENGINE = MergeTree ORDER BY name")
    ch.insert("people", [["Ada", 36], ["O'Brien", 41], ["Zed", 20]], column_names=["name", "age"])
    rows = ch.query(
        "SELECT name FROM people WHERE name = {who:String} OR age > {age:UInt8} ORDER BY name",
        parameters={"who": "O'Brien", "age": 35},
    ).result_rows
    assert rows == [("Ada",), ("O'Brien",)]


def test_settings_apply_to_one_request_only(ch):
    assert ch.command("SELECT getSetting('max_threads')", settings={"max_threads": 1}) == 1
    assert ch.command("SELECT getSetting('max_threads')") != 1
    with pytest.raises(DatabaseError, match="TOO_MANY_ROWS|Limit for result exceeded"):
        ch.query("SELECT number FROM numbers(10)", settings={"max_result_rows": 2, "result_overflow_mode": "throw"})
    assert len(ch.query("SELECT number FROM numbers(10)").result_rows) == 10


def test_datetimes_are_read_in_the_session_timezone_a_query_sets(ch):
    # clickhouse-connect reads a DateTime column without a zone in the zone X-ClickHouse-Timezone names;
    # the header said UTC whatever the query set, and these came back as naive UTC times.
    query = "SELECT toDateTime('2024-01-01 00:00:00') AS local, toUnixTimestamp(local) AS epoch"
    ((local, epoch),) = ch.query(query, settings={"session_timezone": "America/New_York"}).result_rows
    assert epoch == 1704085200  # midnight in New York, 05:00 UTC
    assert local.tzinfo is not None and local.utcoffset() == dt.timedelta(hours=-5)
    assert local.replace(tzinfo=None) == dt.datetime(2024, 1, 1) and local.timestamp() == epoch
    ((utc, _),) = ch.query(query).result_rows
    assert utc == dt.datetime(2024, 1, 1)  # the server's UTC, as clickhouse-connect gives it: naive


def test_the_default_profile_writes_blocks_as_they_are_and_a_request_may_say_otherwise(ch):
    # embedded/engine.py DEFAULT_PROFILE: the views' blocks are not merged on insert
    assert ch.command("SELECT toUInt8(getSetting('optimize_on_insert'))") == 0
    assert ch.command("SELECT toUInt8(getSetting('optimize_on_insert'))", settings={"optimize_on_insert": 1}) == 1
    # and the next request is back on the profile's value, not ClickHouse's default
    assert ch.command("SELECT toUInt8(getSetting('optimize_on_insert'))") == 0


def test_unknown_setting_is_a_clear_error_and_does_not_stick(ch):
    with pytest.raises(DatabaseError, match="115"):
        ch.query("SELECT 1", settings={"no_such_setting_anywhere": 1})
    assert ch.command("SELECT 1") == 1


def test_bad_sql_gives_syntax_error_and_client_stays_usable(ch):
    with pytest.raises(DatabaseError) as caught:
        ch.command("SELEC 1")
    assert "code: 62" in str(caught.value)
    assert "SYNTAX_ERROR" in str(caught.value)
    assert ch.command("SELECT 2") == 2


def test_unknown_table_error(ch):
    with pytest.raises(DatabaseError, match="code: 60"):
        ch.query("SELECT * FROM no_such_table")


def test_bad_data_is_rejected_whole_and_session_stays_usable(clickhouse):
    client = clickhouse.client(autogenerate_session_id=True)
    database = f"bad_{uuid.uuid4().hex[:8]}"
    client.command(f"CREATE DATABASE {database}")
    try:
        client.command(f"CREATE TABLE {database}.nums (n UInt8) ENGINE = MergeTree ORDER BY n")
        with pytest.raises(DatabaseError) as caught:
            client.command(f"INSERT INTO {database}.nums FORMAT CSV", data="1\n2\nnot a number\n")
        assert "code: 117" in str(caught.value) and "INCORRECT_DATA" in str(caught.value)
        assert client.command(f"SELECT count() FROM {database}.nums") == 0
        client.command(f"INSERT INTO {database}.nums FORMAT CSV", data="1\n2\n")
        assert client.command(f"SELECT sum(n) FROM {database}.nums") == 3
    finally:
        client.command(f"DROP DATABASE {database}")


def test_sessions_keep_use_set_and_temporary_tables(clickhouse):
    first = clickhouse.client(autogenerate_session_id=True)
    other = clickhouse.client(autogenerate_session_id=True)
    first.command("CREATE TEMPORARY TABLE scratch (x UInt8)")
    first.command("INSERT INTO scratch VALUES (1), (2)")
    first.command("SET max_threads = 1")
    assert first.command("SELECT sum(x) FROM scratch") == 3
    assert first.command("SELECT getSetting('max_threads')") == 1
    with pytest.raises(DatabaseError, match="60"):
        other.command("SELECT sum(x) FROM scratch")
    assert other.command("SELECT getSetting('max_threads')") != 1


def test_concurrent_clients_mixing_inserts_and_reads(ch, clickhouse):
    ch.command("CREATE TABLE counter (worker UInt8, n UInt32) ENGINE = MergeTree ORDER BY (worker, n)")
    database = ch.database
    workers, batches, batch = 8, 20, 250
    failures: list[BaseException] = []
    observed: list[int] = []

    def work(worker: int) -> None:
        client = clickhouse.client(database=database)
        try:
            for b in range(batches):
                rows = [[worker, b * batch + i] for i in range(batch)]
                client.insert("counter", rows, column_names=["worker", "n"])
                seen = client.command(f"SELECT count() FROM counter WHERE worker = {worker}")
                observed.append(seen)
                assert seen == (b + 1) * batch  # each worker reads its own writes, exactly
        except BaseException as error:  # noqa: BLE001 - reported below
            failures.append(error)
        finally:
            client.close()

    threads = [threading.Thread(target=work, args=(w,)) for w in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures
    assert ch.query("SELECT count(), uniqExact(worker, n) FROM counter").first_row == (workers * batches * batch,) * 2
    assert len(observed) == workers * batches


def test_large_result_streams_completely(ch):
    rows = 0
    total = 0
    with ch.query_row_block_stream("SELECT number FROM numbers(3000000)") as stream:
        for block in stream:
            rows += len(block)
            total += sum(row[0] for row in block)
    assert rows == 3_000_000
    assert total == 3_000_000 * 2_999_999 // 2


def test_error_in_the_middle_of_a_stream_reaches_the_client(ch):
    with pytest.raises(Exception, match="395|throwIf|non-zero"):
        ch.query(
            "SELECT number, throwIf(number = 200000, 'boom') FROM numbers(300000)", settings={"max_block_size": 10000}
        )
    assert ch.command("SELECT 1") == 1
