"""Running the dbt project (dbt_project.yml at the repository root) against the configured ClickHouse.

dbt runs as a child process: its configuration comes from profiles.yml, which reads the
``ANALYTICS_CLICKHOUSE_*`` variables set here from the settings slice, and from ``--vars``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from core.children import obey_stop_signals_and_die_with_parent
from core.ports import url_host
from core.settings.schema import SchemaSettings

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def dbt_vars(settings: SchemaSettings) -> dict:
    return {
        "ingest": settings.resolved_ingest,
        "cluster": settings.cluster,
        "kafka_broker_list": settings.kafka_bootstrap or "127.0.0.1:9092",
        "kafka_topic_prefix": settings.kafka_topic_prefix,
        "kafka_consumer_group_prefix": settings.kafka_consumer_group_prefix,
        "kafka_num_consumers": settings.kafka_consumers,
        "kafka_max_block_size": settings.kafka_max_block_size,
        "kafka_flush_interval_ms": settings.kafka_flush_interval_ms,
        "log_retention_hours": settings.log_retention_hours,
        "audit_mode": settings.audit_mode,
        "reconcile_settle_seconds": settings.resolved_reconcile_settle_seconds,
    }


def dbt_environment(settings: SchemaSettings) -> dict[str, str]:
    """The variables profiles.yml reads, from the ClickHouse URL (server) or the embedded server."""
    connection = settings.clickhouse_connection
    return {
        "ANALYTICS_DBT_TARGET": settings.dbt_target,
        "ANALYTICS_CLICKHOUSE_HOST": url_host(connection.host),  # dbt-clickhouse writes it into a URL
        "ANALYTICS_CLICKHOUSE_HTTP_PORT": str(connection.port),
        "ANALYTICS_CLICKHOUSE_USER": connection.user,
        "ANALYTICS_CLICKHOUSE_PASSWORD": connection.password,
        "ANALYTICS_CLICKHOUSE_SECURE": "True" if connection.secure else "False",  # as_bool reads Python literals
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }


def dbt_executable(settings: SchemaSettings) -> str:
    """The configured dbt, else the dbt of this virtual environment, whatever PATH says."""
    return str(settings.dbt_executable or Path(sys.executable).with_name("dbt"))


def default_target_path(settings: SchemaSettings) -> Path:
    """Where dbt writes its artifacts (manifest.json, run results) unless told otherwise."""
    return settings.data_dir.resolve() / "dbt" / "target"


# Written next to a manifest.json once it is known to be the parse of the project as it was then.
FINGERPRINT_FILE = "fingerprint"


def project_fingerprint(settings: SchemaSettings) -> str:
    """What a manifest depends on: the project's files (names, sizes, times), the vars and target."""
    digest = hashlib.sha256(json.dumps([dbt_vars(settings), settings.dbt_target]).encode())
    files = [
        PROJECT_ROOT / "dbt_project.yml",
        PROJECT_ROOT / "profiles.yml",
        *(PROJECT_ROOT / "dbt_project").rglob("*"),
    ]
    for path in sorted(path for path in files if path.is_file()):
        stat = path.stat()
        digest.update(f"{path.relative_to(PROJECT_ROOT)}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def dbt_command(settings: SchemaSettings, command: str, *args: str, target_path: Path | None = None) -> list[str]:
    """A dbt command line; ``target_path`` defaults to DATA_DIR/dbt/target (logs go next to it)."""
    target_path = target_path or default_target_path(settings)
    return [
        dbt_executable(settings),
        command,
        "--project-dir",
        str(PROJECT_ROOT),
        "--profiles-dir",
        str(PROJECT_ROOT),
        "--target-path",
        str(target_path),
        "--log-path",
        str(target_path.with_name("logs")),
        "--vars",
        json.dumps(dbt_vars(settings)),
        *args,
    ]


def forget_a_stale_stamp(settings: SchemaSettings) -> None:
    """Remove the default target's fingerprint stamp unless these settings' fingerprint is the one
    stamped: a dbt run with other vars (or on changed files) is about to rewrite the manifest there,
    and a stamp left behind would vouch for a manifest it no longer describes."""
    stamp = default_target_path(settings) / FINGERPRINT_FILE
    try:
        if stamp.read_text() != project_fingerprint(settings):
            stamp.unlink(missing_ok=True)
    except FileNotFoundError:
        pass


def run_dbt(
    settings: SchemaSettings,
    command: str,
    *args: str,
    capture: bool = False,
    target_path: Path | None = None,
    log_comment: str = "",
    own_process_group: bool = False,
) -> subprocess.CompletedProcess:
    """dbt ``command``; each statement it sends carries ``log_comment`` (system.processes and
    query_log show it: a rebuild's statements are found by it, operations/rebuild_lock.py).

    ``own_process_group`` keeps a terminal's Ctrl-C, which reaches its whole process group, from
    dbt: the caller alone decides when it stops (`up` lets its schema build end first)."""
    if target_path is None:
        forget_a_stale_stamp(settings)
    return subprocess.run(
        dbt_command(settings, command, *args, target_path=target_path),
        cwd=PROJECT_ROOT,
        env={**os.environ, **dbt_environment(settings), "ANALYTICS_DBT_LOG_COMMENT": log_comment},
        text=True,
        capture_output=capture,
        check=False,
        # A stopped or killed `analytics` takes its dbt with it: an orphan went on changing the
        # schema. (Linux signals the child when the thread that started it ends: this one waits.)
        preexec_fn=obey_stop_signals_and_die_with_parent,
        process_group=0 if own_process_group else None,
    )
