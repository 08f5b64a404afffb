"""The reconciliation checks: dbt tests (dbt_project/tests) that dagster-dbt turns into checks.

They compare the aggregates with the same recomputation from raw history that a rebuild writes
(dbt_project/macros/recompute.sql), so a failing check is exactly what a backfill repairs.
"""

import dagster as dg

RECONCILIATION_TESTS = {
    "workflow_daily_matches_raw_history": "workflow_daily",  # per day
    "workflow_totals_match_raw_history": "workflow_totals",  # in total
    "workflow_totals_add_up_to_daily": "workflow_totals",
    "job_log_totals_match_raw_history": "job_log_totals",  # per job, where no line can have expired
}


def reconciliation_check_keys(dbt_models: dg.AssetsDefinition) -> list[dg.AssetCheckKey]:
    keys = [dg.AssetCheckKey(dg.AssetKey(model), test) for test, model in RECONCILIATION_TESTS.items()]
    missing = [key.to_user_string() for key in keys if key not in dbt_models.check_keys]
    if missing:
        raise ValueError(f"the dbt project has no test for these checks: {', '.join(missing)}")
    return keys
