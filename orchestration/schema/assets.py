"""The dbt models as Dagster assets, grouped by their folder: landing, raw, aggregates, views."""

import json
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, dbt_assets

from core.clickhouse.connect import unreachable
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


# A failed run's target directory stays, so the dbt.log its failure names can be read; the newest
# FAILED_RUNS_KEPT stay, and a directory a killed run left is removed after a day.
FAILED_RUNS_KEPT = 20
FAILED_MARK = "FAILED"
LEFT_BY_A_KILLED_RUN_SECONDS = 24 * 3600


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


def keep_failed_run(target_path: Path, *, now: float | None = None) -> None:
    """Mark a failed run's target directory to be kept; prune older failed and abandoned ones."""
    (target_path / FAILED_MARK).touch()
    now = time.time() if now is None else now
    failed, abandoned = [], []
    for run in target_path.parent.iterdir():
        if run == target_path or not run.is_dir():
            continue
        mark = run / FAILED_MARK
        if mark.exists():
            failed.append((mark.stat().st_mtime, run))
        elif now - run.stat().st_mtime > LEFT_BY_A_KILLED_RUN_SECONDS:
            abandoned.append(run)
    failed.sort(reverse=True)
    for run in [run for _, run in failed[FAILED_RUNS_KEPT - 1 :]] + abandoned:
        shutil.rmtree(run, ignore_errors=True)


def build_dbt_assets(manifest: Path) -> dg.AssetsDefinition:
    @dbt_assets(manifest=manifest, dagster_dbt_translator=AnalyticsTranslator(), name="analytics_dbt")
    def analytics_dbt(
        context: dg.AssetExecutionContext, dbt: DbtCliResource, settings: dg.ResourceParam[DagsterSettings]
    ):
        """`dbt build` of the selected models and tests against the configured ClickHouse."""
        target_path = run_target_path(settings, context.run.run_id)
        clickhouse = ClickHouse(settings)
        succeeded = False
        try:
            with profile_environment(settings):
                invocation = dbt.cli(dbt_build_args(settings), context=context, target_path=target_path)
            for event in invocation.stream():
                # what a failing check found off
                yield named(event, target_path, clickhouse, settings.backfill_start_date)
            succeeded = True
        except Exception as error:
            # dbt says it as a connection pool's "Max retries exceeded with url", inside its command line.
            said = unreachable(settings.clickhouse_connection)
            if said is None:
                raise
            raise dg.Failure(description=said, metadata={"dbt": str(error)[-3000:]}) from None
        finally:
            if succeeded:
                # dbt's artefacts (a manifest per run among them) are in the run's events by now;
                # the health sensor starts runs all day, so keeping them would fill the disk.
                shutil.rmtree(target_path, ignore_errors=True)
            else:
                # The step's failure names this run's dbt.log: it stays to be read.
                keep_failed_run(target_path)

    return analytics_dbt
