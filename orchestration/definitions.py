"""The code location's definitions, built from the Dagster settings slice (core.settings.dagster)."""

import dagster as dg

from core.settings.dagster import DagsterSettings
from orchestration.dead_letters.jobs import replay_dead_letters
from orchestration.health.checks import HEALTH_CHECKS
from orchestration.health.sensors import build_health_job, build_health_sensor
from orchestration.reconciliation.assets import build_daily_reconciliation
from orchestration.reconciliation.checks import reconciliation_check_keys
from orchestration.reconciliation.partitions import daily_partitions
from orchestration.reconciliation.schedules import build_reconciliation_job, build_reconciliation_schedule
from orchestration.resources import ClickHouse
from orchestration.retention.jobs import retention_housekeeping
from orchestration.retention.schedules import retention_housekeeping_daily
from orchestration.schema.assets import build_dbt_assets
from orchestration.schema.resources import dbt_resource, prepare_manifest


def build_definitions(settings: DagsterSettings) -> dg.Definitions:
    dbt_models = build_dbt_assets(prepare_manifest(settings))
    daily_reconciliation = build_daily_reconciliation(daily_partitions(settings))
    reconciliation_job = build_reconciliation_job(daily_reconciliation)

    health_check_keys = reconciliation_check_keys(dbt_models) + [
        key for checks in HEALTH_CHECKS for key in checks.check_keys
    ]
    health_job = build_health_job(health_check_keys)

    return dg.Definitions(
        assets=[dbt_models, daily_reconciliation],
        asset_checks=HEALTH_CHECKS,
        jobs=[reconciliation_job, health_job, retention_housekeeping, replay_dead_letters],
        schedules=[build_reconciliation_schedule(reconciliation_job), retention_housekeeping_daily],
        sensors=[build_health_sensor(settings, health_job, health_check_keys)],
        resources={
            # Plain objects, not config: the connection (and its password) stays out of the UI.
            "settings": settings,
            "clickhouse": ClickHouse(settings),
            "dbt": dbt_resource(settings),
        },
    )
