"""The official ClickHouse clients, unmodified and with their defaults, against the embedded ClickHouse.

Each runs as its users run it: the JDBC driver (what DBeaver, DataGrip and Metabase use) in a
small Java program, clickhouse-go over HTTP (Native format at its protocol revision, with and
without its LZ4/ZSTD block compression) in a Go program, @clickhouse/client in a Node script, and
SQLAlchemy through clickhouse-connect's dialect with pandas. The programs print what they read;
the tests compare it with what was written. Versions are pinned in tests/clients/ and README.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid

import pandas as pd
import pytest
import sqlalchemy as sa

from tests import client_tools

NAMES = ["Zoë", "Ådne", "José", "北京"]


def _tool(install):
    try:
        return install()
    except client_tools.ToolUnavailable as error:
        if os.environ.get("CI", "").lower() in ("true", "1"):
            pytest.fail(f"client tests must run in CI: {error}", pytrace=False)
        pytest.skip(str(error))


def _run(command: list[str], **kwargs) -> dict:
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, **kwargs)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    try:  # the program's report is its last line of output
        report = json.loads(result.stdout.strip().rsplit("\n", 1)[-1])
    except ValueError:
        pytest.fail(f"no JSON report on the last line:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    assert not report.get("error"), report["error"]
    return report


@pytest.fixture
def database(clickhouse):
    name = f"clients_{uuid.uuid4().hex[:10]}"
    admin = clickhouse.client()
    admin.command(f"CREATE DATABASE {name}")
    yield name
    admin.command(f"DROP DATABASE IF EXISTS {name} SYNC")
    admin.close()


# -- JDBC ----------------------------------------------------------------------------------------


def test_jdbc_driver_with_default_settings(clickhouse, database):
    classpath = _tool(client_tools.jdbc_classpath)
    report = _run(
        [
            "java",
            "-Dfile.encoding=UTF-8",
            "-Duser.timezone=UTC",
            "-cp",
            classpath,
            str(client_tools.CLIENTS / "jdbc" / "JdbcCheck.java"),
            f"jdbc:clickhouse://127.0.0.1:{clickhouse.port}/{database}",
        ]
    )
    # Metadata calls, as a BI tool's schema browser makes them.
    assert report["product"] == "ClickHouse"
    assert report["schema"] == database
    assert report["tables"] == ["people:TABLE"]
    assert report["columns"][:3] == ["id:UInt32", "name:String", "score:Float64"]
    assert "tags:Array(String)" in report["columns"] and "amount:Decimal(18, 4)" in report["columns"]
    assert database in report["schemas"]
    # A batch of prepared inserts with non-ASCII values, read back with their types.
    assert report["batch_statements"] == 5
    rows = report["rows"]
    assert [row["name"] for row in rows] == [*NAMES, 'it\'s "quoted"']
    assert rows[3]["tags"] == ["tag é", "北京"]
    assert [row["maybe"] for row in rows] == [0, None, -2, None, -4]
    assert rows[2] == {
        "id": 2,
        "name": "José",
        "score": 0.5,
        "born": "2024-02-23",
        "at": "2024-02-29 23:59:52.123",
        "tags": ["tag é", "José"],
        "maybe": -2,
        "amount": "2.2500",
        "uid": "00000000-0000-0000-0000-000000000002",
        "flag": True,
    }
    # Non-ASCII in prepared parameters, literals and comments reaches chDB intact.
    assert report["prepared_select"] == ["0:Zoë", "3:北京"]
    assert report["literal"] == "é ✓ 日本" and report["literal_count"] == 1
    assert report["missing_table_error"].startswith("Code: 60. DB::Exception: Unknown table")
    # A column's own zone survives the spooled RowBinaryWithNamesAndTypes the driver reads: the type
    # was a bare DateTime and the time shown UTC's (10:00), a difference a dashboard's user sees.
    assert report["zoned_type"] == "DateTime('Europe/Berlin')"
    assert report["zoned_text"].startswith("2024-07-01 12:00:00")
    assert report["zoned"] == "2024-07-01T12:00+02:00[Europe/Berlin]"


# -- Go ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("compression", ["none", "lz4", "zstd"])
def test_clickhouse_go_over_http(clickhouse, database, compression):
    binary = _tool(client_tools.go_client)
    report = _run(
        [str(binary), "-addr", f"127.0.0.1:{clickhouse.port}", "-compression", compression, "-database", database]
    )
    rows = report["rows"]
    assert [row["name"] for row in rows] == [*NAMES, "plain"]
    assert rows[1] == {
        "id": 1,
        "name": "Ådne",
        "score": 0.25,
        "tags": ["tag é", "Ådne"],
        "label": "label-Ådne",
        "maybe": None,
        "at": "2024-02-29T23:59:58.001Z",
        "counts": {"ü": 1},
        "decimal": "1.25",
    }
    assert rows[3]["maybe"] is None and rows[4]["maybe"] == -4
    assert report["literal"] == "é ✓ 日本"
    assert (report["like_count"], report["equal_count"]) == (2, 1)
    assert report["parameter_names"] == ["Zoë", "Ådne"]
    assert (report["big_count"], report["big_sum"]) == (3_000_000, 3_000_000 * 2_999_999 // 2)


# -- Node ----------------------------------------------------------------------------------------


def test_node_client_streams_reports_mid_stream_errors_and_keeps_sessions(clickhouse, database):
    folder = _tool(client_tools.node_client)
    report = _run(["node", str(folder / "check.mjs"), clickhouse.url, database])
    assert report["ping"] is True
    assert report["rows"] == [{"id": 1, "name": "Zoë"}, {"id": 2, "name": "北京"}]
    assert report["literal"] == [{"s": "é ✓", "n": 1}]
    assert report["bound"] == [{"name": "北京"}]
    assert report["streamed"] == {"rows": 500_000, "sum": 500_000 * 499_999 // 2}
    # The error after the first blocks reaches the client whole: its code and its first character.
    error = report["mid_stream_error"]
    assert error["code"] == "395", error
    assert error["message"].startswith("late failure"), error
    assert report["session_sum"] == "6" or report["session_sum"] == 6
    assert "Unknown table" in report["outside_session"]


# -- SQLAlchemy and pandas -----------------------------------------------------------------------


def test_sqlalchemy_dialect_and_pandas_read_sql(clickhouse, database):
    engine = sa.create_engine(f"clickhousedb://default:@127.0.0.1:{clickhouse.port}/{database}")
    try:
        with engine.connect() as connection:
            connection.execute(
                sa.text("CREATE TABLE visits (id UInt32, city String, seconds Float64) ENGINE = MergeTree ORDER BY id")
            )
            connection.execute(
                sa.text("INSERT INTO visits VALUES (1, 'Zürich', 1.5), (2, '北京', 2.5), (3, 'Oslo', 4)")
            )
        # A SELECT string: pandas asks the dialect whether a table of that name exists first.
        frame = pd.read_sql("SELECT id, city FROM visits WHERE city LIKE '%ü%' OR city = '北京' ORDER BY id", engine)
        assert frame.to_dict("records") == [{"id": 1, "city": "Zürich"}, {"id": 2, "city": "北京"}]
        not_oslo = sa.text("SELECT sum(seconds) AS s FROM visits WHERE city != :c")
        bound = pd.read_sql(not_oslo, engine, params={"c": "Oslo"})
        assert bound["s"].tolist() == [4.0]
        assert pd.read_sql_table("visits", engine)["id"].tolist() == [1, 2, 3]
        assert sa.inspect(engine).get_table_names() == ["visits"]
    finally:
        engine.dispose()
