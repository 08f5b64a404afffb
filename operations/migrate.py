"""`analytics migrate`: build the schema with dbt against the configured ClickHouse. Safe to repeat.

`analytics up` builds it the same way as it starts, except that data failing a dbt test does not
stop the start (build_for_start): the stack is what takes events in and what repairs the data.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from core.settings.schema import SchemaSettings
from operations.dbt import FINGERPRINT_FILE, default_target_path, project_fingerprint, run_dbt


class SchemaBuildFailed(RuntimeError):
    """dbt could not build the schema itself (not: the data fails a test)."""


def migrate(
    settings: SchemaSettings, capture: bool = False, own_process_group: bool = False
) -> subprocess.CompletedProcess:
    """`dbt build`: create what is missing, update views in place, run every test. Safe to repeat.

    After a build that passed, the project's fingerprint (taken before dbt read the files) is
    written next to the manifest dbt wrote, so the Dagster code location, which needs the same
    manifest, can take it instead of parsing the project again (orchestration/schema/resources.py).
    """
    stamp = default_target_path(settings) / FINGERPRINT_FILE
    stamp.unlink(missing_ok=True)  # the manifest is about to be rewritten
    fingerprint = project_fingerprint(settings)
    result = run_dbt(settings, "build", capture=capture, own_process_group=own_process_group)
    if result.returncode == 0:
        stamp.write_text(fingerprint)
    return result


def failing_data_tests(target_path: Path) -> list[str] | None:
    """The data tests that failed in the dbt run whose results are in ``target_path``, when that is
    all that went wrong (the nodes after them skipped); None when anything else did, or nothing."""
    try:
        results = json.loads((target_path / "run_results.json").read_text())["results"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    failing = []
    for result in results:
        kind, status = result["unique_id"].split(".")[0], result["status"]
        if kind == "test" and status == "fail":
            failing.append(result["unique_id"].split(".")[2])
        elif status not in ("success", "pass", "skipped"):
            return None  # a model, a seed, a hook or a test's own SQL failed: the schema is not built
    return failing or None


def build_for_start(settings: SchemaSettings) -> list[str]:
    """`up`'s build: the schema as migrate builds it; returns the data tests that fail.

    Data failing a test (an aggregate off its raw history, say) does not stop the start: the
    models a failing test held back in `dbt build` are built by a `dbt run`, and the caller says
    which tests fail. Anything else that fails raises SchemaBuildFailed.
    """
    result = migrate(settings, capture=True, own_process_group=True)
    if result.returncode == 0:
        return []
    failing = failing_data_tests(default_target_path(settings))
    if failing is None:
        raise SchemaBuildFailed("dbt build failed:\n" + (result.stdout[-4000:] or result.stderr[-4000:]))
    rest = run_dbt(settings, "run", capture=True, own_process_group=True)
    if rest.returncode != 0:
        raise SchemaBuildFailed("dbt run failed:\n" + (rest.stdout[-4000:] or rest.stderr[-4000:]))
    return failing
