"""Server mode, which cannot run here (no ClickHouse server, no Kafka engine in chDB), kept correct
by snapshots of what `dbt compile` makes of the project, and by ClickHouse's own parser."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from core import names
from core.settings.composed import Settings
from operations.dbt import dbt_executable
from tests.ddl_recorder import ON_CLUSTER, DdlRecorder
from tests.intake import HTTP

pytestmark = pytest.mark.long_file(31)  # seconds of a worker, measured: run first (tests/scheduling.py)

ROOT = Path(__file__).resolve().parent.parent
SNAPSHOTS = ROOT / "tests" / "snapshots"
CONFIG_KEYS = ("materialized", "engine", "order_by", "primary_key", "partition_by", "ttl", "settings", "enabled")

VARIANTS = {
    "server_single_node": {"ingest": "kafka", "kafka_broker_list": "kafka-1:9092,kafka-2:9092"},
    "server_cluster": {
        "ingest": "kafka",
        "cluster": "analytics_cluster",
        "kafka_broker_list": "kafka-1:9092",
        "kafka_num_consumers": 4,
    },
    "embedded": {"ingest": "direct"},
}


def compile_project(clickhouse, variant: str, tmp_path: Path) -> dict:
    target = tmp_path / variant
    run_dbt_of_the_tests("compile_profile", clickhouse.port, target, tmp_path, variant, "compile")
    return json.loads((target / "manifest.json").read_text())


def run_dbt_of_the_tests(profile: str, port: int, target: Path, tmp_path: Path, variant: str, *command: str) -> None:
    """A dbt command (its name, then its arguments) with a profile of tests/fixtures and a variant's vars."""
    result = subprocess.run(
        [
            dbt_executable(Settings()),
            command[0],
            "--project-dir",
            str(ROOT),
            "--profiles-dir",
            str(ROOT / "tests" / "fixtures" / profile),
            "--target-path",
            str(target),
            "--log-path",
            str(tmp_path / "logs"),
            *command[1:],
            "--vars",
            json.dumps(VARIANTS[variant]),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env={**os.environ, "ANALYTICS_CLICKHOUSE_HTTP_PORT": str(port), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"},
    )
    assert result.returncode == 0, result.stdout[-4000:]


def rendering(manifest: dict) -> str:
    """Every model's configuration and compiled SQL, in a stable order."""
    parts = []
    for node in sorted(manifest["nodes"].values(), key=lambda n: n["unique_id"]):
        if node["resource_type"] != "model":
            continue
        config = {key: node["config"].get(key) for key in CONFIG_KEYS if node["config"].get(key) not in (None, {})}
        hooks = [hook["sql"] for hook in node["config"].get("post-hook", [])]
        parts.append(
            f"-- model {node['name']}\n-- config {json.dumps(config, sort_keys=True)}\n"
            + (f"-- post-hooks {json.dumps(hooks)}\n" if hooks else "")
            + node["compiled_code"].strip()
            + "\n"
        )
    for _name, node in sorted(manifest.get("disabled", {}).items()):
        parts.append(f"-- disabled {node[0]['name']}\n")
    return "\n".join(parts)


@pytest.fixture(scope="module")
def compiled(clickhouse, tmp_path_factory):
    """`dbt compile` of each variant, run once for the module: manifest(variant)."""
    manifests: dict[str, dict] = {}

    def manifest(variant: str) -> dict:
        if variant not in manifests:
            manifests[variant] = compile_project(clickhouse, variant, tmp_path_factory.mktemp(variant))
        return manifests[variant]

    return manifest


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_compiled_project_matches_its_snapshot(compiled, variant):
    rendered = rendering(compiled(variant))
    snapshot = SNAPSHOTS / f"dbt_{variant}.sql"
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        snapshot.write_text(rendered)
    assert snapshot.exists(), f"{snapshot} is missing; UPDATE_SNAPSHOTS=1 writes it, to be reviewed and committed"
    assert rendered == snapshot.read_text(), f"{snapshot} is stale; UPDATE_SNAPSHOTS=1 rewrites it after review"


@pytest.mark.parametrize("variant", ["server_single_node", "server_cluster"])
def test_clickhouse_parses_every_compiled_statement(clickhouse, compiled, variant):
    manifest = compiled(variant)
    for node in manifest["nodes"].values():
        if node["resource_type"] not in ("model", "test"):
            continue
        # Parameter values travel in ClickHouse's escaped text form.
        sql = node["compiled_code"].replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")
        response = HTTP.request(
            "POST", clickhouse.url + "/", fields={"query": "SELECT formatQuery({sql:String})", "param_sql": sql}
        )
        assert response.status == 200, f"{node['name']}: {response.data.decode()[:500]}"


def test_server_mode_reads_kafka_and_dead_letters_breaks(compiled):
    rendered = rendering(compiled("server_cluster"))
    messages = rendered.split("-- model jobs_messages\n", 1)[1].split("-- model", 1)[0]
    assert '"engine": "Kafka()"' in messages
    assert '"kafka_group_name": "analytics_jobs"' in messages
    assert '"kafka_format": "RawBLOB"' in messages  # one message, one row, whatever its bytes
    assert '"kafka_num_consumers": 4' in messages
    jobs_queue = rendered.split("-- model jobs_queue\n", 1)[1].split("-- model", 1)[0]
    assert '"engine": "Null()"' in jobs_queue
    assert "-- model jobs_queue_from_jobs_messages_mv" in rendered
    assert "ReplicatedAggregatingMergeTree()" in rendered
    assert "Distributed('analytics_cluster', currentDatabase(), 'workflow_totals', cityHash64(user_id))" in rendered
    assert "-- model dead_letters_from_jobs_checked_mv" in rendered
    assert "_violation != ''" in rendered  # what breaks the contract is dead-lettered
    # Only rows not from Kafka (the HTTP intake) are ever thrown for; Kafka's are dead-lettered.
    from_http = "throwIf(NOT (_offset IS NOT NULL AND _raw_message IS NOT NULL)"
    assert rendered.count("throwIf(") == rendered.count(from_http)


# -- the DDL a cluster receives -------------------------------------------------------------------

DDL = re.compile(r"(?is)^\s*(create|alter|drop|rename|exchange|insert|system|truncate|optimize)\b")
DBT_HEADER = re.compile(r"^\s*/\*.*?\*/", re.DOTALL)  # dbt's query comment: its version and the node
RANDOM_NAMES = re.compile(r"(__dbt_(?:tmp|backup|new_data|distributed_backup|exchange_test_\d)_?)[0-9a-f]{8,}")
BLANK_LINES = re.compile(r"\n\s*\n+")
INVOCATION_ID = re.compile(r"'[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}'")  # schema_history's


def tidy(statement: str) -> str:
    """One statement as the snapshot keeps it: without dbt's comment, random suffixes, the run's id or blank lines."""
    statement = RANDOM_NAMES.sub(r"\1id", DBT_HEADER.sub("", statement, count=1))
    statement = INVOCATION_ID.sub("'<invocation id>'", statement)
    lines = [line.rstrip() for line in statement.strip().splitlines()]
    return BLANK_LINES.sub("\n", "\n".join(lines))


def cluster_ddl(clickhouse, tmp_path: Path) -> tuple[list[str], list[str]]:
    """Every statement dbt-clickhouse sends a cluster when `dbt run` builds server mode from nothing,
    and then every statement a rebuild of a day (`rebuild_days`, as `analytics backfill` runs it) sends."""
    recorder = DdlRecorder(clickhouse.url)
    try:
        HTTP.request("POST", clickhouse.url + "/", body=b"DROP DATABASE IF EXISTS analytics_cluster_ddl SYNC")
        run_on_cluster(recorder, tmp_path, "run", "--threads", "1")
        built = len(recorder.statements)
        rebuild = json.dumps({"days": ["2026-11-20"], "staging_suffix": "c1"})
        run_on_cluster(recorder, tmp_path, "run-operation", "rebuild_days", "--args", rebuild)
    finally:
        recorder.close()
        HTTP.request("POST", clickhouse.url + "/", body=b"DROP DATABASE IF EXISTS analytics_cluster_ddl SYNC")
    ddl = [tidy(statement) + "\n;\n" for statement in recorder.statements[:built] if DDL.match(tidy(statement))]
    return ddl, recorder.statements[built:]


def run_on_cluster(recorder: DdlRecorder, tmp_path: Path, *command: str) -> None:
    """A dbt command of the cluster variant, through the recorder."""
    run_dbt_of_the_tests("cluster_profile", recorder.port, tmp_path / "target", tmp_path, "server_cluster", *command)


def test_cluster_ddl_matches_its_snapshot_and_clickhouse_parses_every_statement(clickhouse, tmp_path):
    statements, rebuild = cluster_ddl(clickhouse, tmp_path)
    rendered = "\n".join(statements)
    snapshot = SNAPSHOTS / "dbt_cluster_ddl.sql"
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        snapshot.write_text(rendered)
    assert snapshot.exists(), f"{snapshot} is missing; UPDATE_SNAPSHOTS=1 writes it, to be reviewed and committed"
    assert rendered == snapshot.read_text(), f"{snapshot} is stale; UPDATE_SNAPSHOTS=1 rewrites it after review"
    for statement in statements:
        sql = statement.removesuffix("\n;\n").replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")
        response = HTTP.request(
            "POST", clickhouse.url + "/", fields={"query": "SELECT formatQuery({sql:String})", "param_sql": sql}
        )
        assert response.status == 200, f"{statement[:300]}: {response.data.decode()[:500]}"
    # What a cluster must receive: every table on every node, replicated, spread, fed by Kafka.
    creates = [s for s in statements if s.lower().startswith("create") and "__dbt_exchange_test" not in s]
    assert creates and all(" on cluster " in s.lower() for s in creates)
    assert any("ReplicatedAggregatingMergeTree" in s for s in creates)
    assert any("ReplicatedReplacingMergeTree" in s for s in creates)
    assert any("Distributed('analytics_cluster'" in s for s in creates)
    for topic in ("workflows", "jobs", "job_logs", "analytics", "telemetry"):
        [kafka_table] = [s for s in creates if f"`analytics_cluster_ddl`.`{topic}_messages`" in s.split("(")[0]]
        assert "Kafka()" in kafka_table and "kafka_handle_error_mode" not in kafka_table, kafka_table
        assert any(f"dead_letters_from_{topic}_checked_mv" in s for s in creates), topic
    # A rebuild is the connected shard's, as the checks that call for it read that shard: a delete
    # on cluster removed every shard's digests of the day where only this shard's were rebuilt.
    deletes = [s for s in rebuild if tidy(s).lstrip().lower().startswith("delete from")]
    assert any("job_duration_daily" in s for s in deletes), rebuild
    assert not [s for s in rebuild if ON_CLUSTER.search(s)], [s[:300] for s in rebuild if ON_CLUSTER.search(s)]


def test_each_topics_contract_is_evaluated_by_one_view(compiled):
    # The rules' multiIf is costly to plan, on every insert: one view computes it into <topic>_checked,
    # and the views behind read its result as a column (docs/performance.md, "The contract once per block").
    manifest = compiled("embedded")
    evaluating = sorted(
        node["name"]
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and "multiIf(\n    _error != ''" in node["compiled_code"]
    )
    assert evaluating == sorted(f"{topic}_checked_from_{topic}_queue_mv" for topic in names.TOPICS)
