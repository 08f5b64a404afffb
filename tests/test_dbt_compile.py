"""Server mode, which cannot run here (no ClickHouse server, no Kafka engine in chDB), kept correct
by snapshots of what `dbt compile` makes of the project, and by ClickHouse's own parser."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.intake import HTTP

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
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("dbt")),
            "compile",
            "--project-dir",
            str(ROOT),
            "--profiles-dir",
            str(ROOT / "tests" / "fixtures" / "compile_profile"),
            "--target-path",
            str(target),
            "--log-path",
            str(tmp_path / "logs"),
            "--vars",
            json.dumps(VARIANTS[variant]),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={
            **os.environ,
            "ANALYTICS_CLICKHOUSE_HTTP_PORT": str(clickhouse.port),
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        },
    )
    assert result.returncode == 0, result.stdout[-4000:]
    return json.loads((target / "manifest.json").read_text())


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


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_compiled_project_matches_its_snapshot(clickhouse, tmp_path, variant):
    rendered = rendering(compile_project(clickhouse, variant, tmp_path))
    snapshot = SNAPSHOTS / f"dbt_{variant}.sql"
    if os.environ.get("UPDATE_SNAPSHOTS") == "1" or not snapshot.exists():
        snapshot.write_text(rendered)
    assert rendered == snapshot.read_text(), f"{snapshot} is stale; UPDATE_SNAPSHOTS=1 rewrites it after review"


@pytest.mark.parametrize("variant", ["server_single_node", "server_cluster"])
def test_clickhouse_parses_every_compiled_statement(clickhouse, tmp_path, variant):
    manifest = compile_project(clickhouse, variant, tmp_path)
    for node in manifest["nodes"].values():
        if node["resource_type"] not in ("model", "test"):
            continue
        # Parameter values travel in ClickHouse's escaped text form.
        sql = node["compiled_code"].replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")
        response = HTTP.request(
            "POST", clickhouse.url + "/", fields={"query": "SELECT formatQuery({sql:String})", "param_sql": sql}
        )
        assert response.status == 200, f"{node['name']}: {response.data.decode()[:500]}"


def test_server_mode_reads_kafka_and_dead_letters_breaks(clickhouse, tmp_path):
    rendered = rendering(compile_project(clickhouse, "server_cluster", tmp_path))
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
    assert "-- model dead_letters_from_jobs_queue_mv" in rendered
    assert "_violation != ''" in rendered  # what breaks the contract is dead-lettered
    # Only rows without a Kafka position (the HTTP intake) are ever thrown for; Kafka's are dead-lettered.
    assert rendered.count("throwIf(") == rendered.count("throwIf(_offset IS NULL")
