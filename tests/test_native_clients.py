"""The official clients read every type at their protocol revision as they read it from a server.

clickhouse-connect sends client_protocol_version=54405 once its probe succeeds; what it reads must
be what it reads at revision 0 (a client without the probe), values or its own error alike.
clickhouse-go (54460, tests/clients/go) must read the same values; for types it cannot read
(AggregateFunction) it must fail on its own, as against a server, not on an error of ours. The
project's own tables (JSON attributes, argMax and t-digest states) are read both ways too.
"""

from __future__ import annotations

import json

import pytest
from clickhouse_connect import common

from tests import client_tools, datasets
from tests.intake import deliver, post_batch
from tests.test_clients import _run, _tool
from tests.test_native_revision import DYNAMIC_SHAPES, ONE_BLOCK, SHAPES, expected_block, native

pytestmark = pytest.mark.long_file(13)  # seconds of a worker, measured: run first (tests/scheduling.py)

ROWS, BLOCK = 2500, 1000  # three blocks


@pytest.fixture(scope="module")
def clients(clickhouse):
    """clickhouse-connect at its protocol revision, and the same client at revision 0."""
    framed = clickhouse.client()
    common.set_setting("use_protocol_version", False)
    try:
        plain = clickhouse.client()
    finally:
        common.set_setting("use_protocol_version", True)
    assert (framed.protocol_version, plain.protocol_version) == (54405, 0)
    yield framed, plain
    framed.close()
    plain.close()


def outcome(client, sql: str):
    """What a client reads: its rows and column types, or its error."""
    try:
        result = client.query(sql, settings={"max_block_size": BLOCK, "max_threads": 1})
        return [t.name for t in result.column_types], result.result_rows
    except Exception as error:  # noqa: BLE001 - the same failure is part of the answer
        return type(error).__name__, str(error)


def select(columns: dict[str, str]) -> str:
    return "SELECT " + ", ".join(f"{expr} AS {name}" for name, expr in columns.items()) + f" FROM numbers({ROWS})"


ALL_SHAPES = SHAPES | DYNAMIC_SHAPES


@pytest.mark.parametrize("shape", list(ALL_SHAPES))
def test_clickhouse_connect_reads_every_type_at_its_revision_as_at_revision_0(clients, shape):
    framed, plain = clients
    columns = ALL_SHAPES[shape]
    for name, expr in columns.items():  # one column at a time: an unreadable type spoils only itself
        sql = select({name: expr, "n": "number"})
        seen = outcome(framed, sql)
        assert seen == outcome(plain, sql), (name, expr)
        if shape != "aggregate_states":
            assert len(seen[1]) == ROWS, (name, seen)


def test_clickhouse_connect_fails_on_aggregate_states_itself_as_with_a_server(clients):
    framed, _ = clients
    kind, message = outcome(framed, select(SHAPES["aggregate_states"]))
    assert kind == "NotSupportedError" and message.endswith("Float64) deserialization not supported")


def go_read(server, queries: list[str], compression: str = "none") -> list[dict]:
    """What clickhouse-go reads for each query (tests/clients/go -query): types, rows as JSON, error."""
    binary = _tool(client_tools.go_client)
    args = [str(binary), "-addr", f"127.0.0.1:{server.port}", "-compression", compression]
    for query in queries:
        args += ["-query", query]
    return _run(args)["results"]


# What clickhouse-go reads as JSON text, for the columns it reads as clickhouse-connect does.
GO_SHAPES = {"variant", "geo", "strings_and_arrays"} | set(DYNAMIC_SHAPES)
# clickhouse-go hands a Dynamic's SharedVariant values over undecoded (type and value in binary), as
# it does from a server: only that it reads them all is checked.
GO_UNDECODED = {"dynamic.shared"}
GO_UNSUPPORTED = {"geo.geometry": 'unsupported column type "Geometry"'}  # as with a server
# clickhouse-go 2.51 skips a JSON's shared data as if empty (its own comment says so): the typed
# JSON of the byte-level tests, whose max_dynamic_paths=1 sends a path there, becomes one without.
GO_REPLACED = {
    "json.typed": 'CAST(\'{"a":{"b":\' || toString(number) || \'},"c":"x","lc":"l"}\', '
    "'JSON(a.b UInt32, lc LowCardinality(String))')"
}


@pytest.mark.parametrize("compression", ["none", "lz4"])
def test_clickhouse_go_reads_json_dynamic_variant_and_nested_types(clickhouse, clients, compression):
    _, plain = clients
    queries = {
        # clickhouse-connect asks for cast_string_to_dynamic_use_inference=1 on every query: not here.
        f"{shape}.{name}": select({name: GO_REPLACED.get(f"{shape}.{name}", expr), "n": "number"})
        + f" SETTINGS max_block_size={BLOCK}, cast_string_to_dynamic_use_inference=0"
        for shape in sorted(GO_SHAPES)
        for name, expr in ALL_SHAPES[shape].items()
    }
    results = go_read(clickhouse, list(queries.values()), compression)
    for (label, query), result in zip(queries.items(), results, strict=True):
        if label in GO_UNSUPPORTED:
            assert GO_UNSUPPORTED[label] in result["error"] and "DB::Exception" not in result["error"]
            continue
        assert result["error"] == "", (label, result["error"])
        expected = plain.query(query).result_rows
        if label in GO_UNDECODED:
            assert [row[1] for row in result["rows"]] == [row[1] for row in expected], label
            continue
        assert result["rows"] == json.loads(json.dumps(expected, default=list)), label


def test_clickhouse_go_fails_on_aggregate_states_itself_as_with_a_server(clickhouse):
    [result] = go_read(clickhouse, [select(SHAPES["aggregate_states"])])
    assert result["error"].startswith("readData: ") and "unsupported column type" in result["error"]
    assert "DB::Exception" not in result["error"]


# -- the project's tables --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def project_rows(analytics_db):
    """Jobs (argMax and t-digest states) and telemetry (JSON attributes) of one user of its own."""
    dataset = datasets.generate(seed=29, users=1, workflows_per_user=2, jobs_per_workflow=3)
    deliver(analytics_db, dataset.messages)
    telemetry = [
        {
            "event_id": f"{dataset.prefix}-t{i}",
            "event_time": f"2026-11-20T10:00:0{i}.123Z",
            "event_type": "behavioral",
            "event_name": "deploy-success",
            "service_name": "cli",
            "service_version": ["1.2.3", "2.0.0", "1.2.3"][i % 3],
            "user_id": f"{dataset.prefix}-u",
            "details": [{"region": "eu", "attempts": 2}, {"tags": ["a", "b"], "ratio": 0.5}, {}][i % 3],
        }
        for i in range(7)
    ]
    assert post_batch(analytics_db, "telemetry", telemetry).status == 200
    return dataset.prefix


def project_queries(prefix: str) -> dict[str, str]:
    mine = f"startsWith(user_id, '{prefix}')"
    return {
        "telemetry": f"SELECT * FROM analytics.telemetry_events WHERE {mine} ORDER BY event_id",
        # Paths of the JSON column, as README's ad-hoc example reads them: Dynamic columns, a sub-object.
        "service_versions": "SELECT attributes.service_version AS v, attributes.details.attempts AS a, "
        f"attributes.^details AS d FROM analytics.telemetry_events WHERE {mine} ORDER BY event_id",
        # FINAL: one row per key, so the order is the same in every query.
        "job_states": f"SELECT * FROM analytics.job_current FINAL WHERE {mine} ORDER BY workflow_id, job_id",
        # Merged by GROUP BY, not FINAL: FINAL over the several parts of a month's partition may
        # answer in more blocks than one, which the framing comparison reads as one.
        "durations": "SELECT user_id, workflow_id, day, quantilesTDigestMergeState(0.5, 0.9, 0.95, 0.99)"
        f"(duration_seconds_quantiles) AS duration_seconds_quantiles FROM analytics.job_duration_daily WHERE {mine} "
        "GROUP BY user_id, workflow_id, day ORDER BY workflow_id, day",
    }


PROJECT_QUERIES = list(project_queries(""))


@pytest.mark.parametrize("revision", [54405, 54460])
@pytest.mark.parametrize("query", list(PROJECT_QUERIES))
def test_the_projects_tables_are_framed_exactly(analytics_db, project_rows, query, revision):
    sql = project_queries(project_rows)[query]
    client = analytics_db.client()
    try:
        names = [row[0] for row in client.query(f"DESCRIBE ({sql})").result_rows]
    finally:
        client.close()
    expected = expected_block(analytics_db, {name: f"`{name}`" for name in names}, f"({sql})", revision)
    actual = native(analytics_db, f"{sql} SETTINGS {ONE_BLOCK}", client_protocol_version=str(revision))
    assert actual == expected


def test_the_projects_tables_read_through_both_clients(analytics_db, project_rows):
    framed = analytics_db.client()
    common.set_setting("use_protocol_version", False)
    try:
        plain = analytics_db.client()
    finally:
        common.set_setting("use_protocol_version", True)
    queries = project_queries(project_rows)
    for name, sql in queries.items():
        seen = outcome(framed, sql)
        assert seen == outcome(plain, sql), name
        if name not in ("job_states", "durations"):  # clickhouse-connect cannot read states
            assert isinstance(seen[0], list) and len(seen[1]) > 0, (name, seen)  # rows, not the same error twice
    readable = [queries["telemetry"], queries["service_versions"]]
    for sql, result in zip(readable, go_read(analytics_db, readable), strict=True):
        assert result["error"] == "", result["error"]
        assert len(result["rows"]) == len(plain.query(sql).result_rows) > 0
