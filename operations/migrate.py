"""`analytics migrate`: build the schema with dbt against the configured ClickHouse. Safe to repeat."""

from __future__ import annotations

import subprocess

from core.settings.schema import SchemaSettings
from operations.dbt import FINGERPRINT_FILE, default_target_path, project_fingerprint, run_dbt


def migrate(settings: SchemaSettings, capture: bool = False) -> subprocess.CompletedProcess:
    """`dbt build`: create what is missing, update views in place, run every test. Safe to repeat.

    After a build that passed, the project's fingerprint (taken before dbt read the files) is
    written next to the manifest dbt wrote, so the Dagster code location, which needs the same
    manifest, can take it instead of parsing the project again (orchestration/schema/resources.py).
    """
    stamp = default_target_path(settings) / FINGERPRINT_FILE
    stamp.unlink(missing_ok=True)  # the manifest is about to be rewritten
    fingerprint = project_fingerprint(settings)
    result = run_dbt(settings, "build", capture=capture)
    if result.returncode == 0:
        stamp.write_text(fingerprint)
    return result
