"""The dbt models as Dagster assets, grouped by their folder: landing, raw, aggregates, views."""

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, dbt_assets

from core.settings.dagster import DagsterSettings
from operations.dbt import dbt_vars
from orchestration.reconciliation.failing_rows import named
from orchestration.resources import ClickHouse
from orchestration.schema.resources import dagster_dbt_dir, manifest_target_path, profile_environment


class AnalyticsTranslator(DagsterDbtTranslator):
    """Asset keys are the model names; the group is the folder a model lives in."""

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return model_group(dbt_resource_props) or super().get_group_name(dbt_resource_props)


def model_group(dbt_resource_props: Mapping[str, Any]) -> str | None:
    # fqn is [project, folder..., name]: dbt_project/models/raw/job_events.sql -> raw
    fqn = dbt_resource_props.get("fqn", [])
    if dbt_resource_props.get("resource_type") == "model" and len(fqn) >= 3:
        return fqn[1]
    return None


def dbt_build_args(settings: DagsterSettings) -> list[str]:
    """`dbt build` with this deployment's vars; dagster-dbt adds the selection of a run."""
    return ["build", "--vars", json.dumps(dbt_vars(settings))]


def run_target_path(settings: DagsterSettings, run_id: str) -> Path:
    """A target directory per run (dbt writes run_results.json there), under the data directory.

    It starts with the partial-parse state of the load's `dbt parse`, so dbt need not parse the
    whole project again for every run.
    """
    target_path = dagster_dbt_dir(settings) / "runs" / run_id
    target_path.mkdir(parents=True, exist_ok=True)
    parsed = manifest_target_path(settings) / "partial_parse.msgpack"
    if parsed.exists():
        shutil.copyfile(parsed, target_path / parsed.name)
    return target_path


def build_dbt_assets(manifest: Path) -> dg.AssetsDefinition:
    @dbt_assets(manifest=manifest, dagster_dbt_translator=AnalyticsTranslator(), name="analytics_dbt")
    def analytics_dbt(
        context: dg.AssetExecutionContext, dbt: DbtCliResource, settings: dg.ResourceParam[DagsterSettings]
    ):
        """`dbt build` of the selected models and tests against the configured ClickHouse."""
        target_path = run_target_path(settings, context.run.run_id)
        clickhouse = ClickHouse(settings)
        try:
            with profile_environment(settings):
                invocation = dbt.cli(dbt_build_args(settings), context=context, target_path=target_path)
            for event in invocation.stream():
                yield named(event, target_path, clickhouse)  # what a failing check found off
        finally:
            # dbt's artefacts (a manifest per run among them) are in the run's events by now; the
            # health sensor starts runs all day, so keeping them would fill the disk.
            shutil.rmtree(target_path, ignore_errors=True)

    return analytics_dbt
