"""dbt for Dagster: the manifest it is built from and the dbt CLI resource that runs the models."""

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from dagster_dbt import DbtCliResource

from analytics.migrate import PROJECT_ROOT, dbt_environment, dbt_executable, run_dbt
from analytics.settings import Settings


class ManifestError(RuntimeError):
    """`dbt parse` failed, so there is no asset graph to show."""


def dagster_dbt_dir(settings: Settings) -> Path:
    """Everything dbt writes for Dagster lives under the data directory, never in the repository."""
    return settings.data_dir.resolve() / "dbt" / "dagster"


def manifest_target_path(settings: Settings) -> Path:
    return dagster_dbt_dir(settings) / "manifest"


def prepare_manifest(settings: Settings) -> Path:
    """Parse the dbt project (with this deployment's vars) and return the manifest's path.

    Runs on every load, so a fresh clone needs no pre-built target and a changed model shows up on
    reload; dbt's partial parsing keeps repeats quick. The webserver, the daemon and run workers
    load the code location at the same time, hence the lock around the shared target directory.
    """
    target_path = manifest_target_path(settings)
    target_path.mkdir(parents=True, exist_ok=True)
    with open(target_path / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        result = run_dbt(settings, "parse", capture=True, target_path=target_path)
    if result.returncode != 0:
        raise ManifestError(f"dbt parse failed (exit {result.returncode}):\n{(result.stdout + result.stderr)[-3000:]}")
    return target_path / "manifest.json"


def dbt_resource() -> DbtCliResource:
    # No target here: profiles.yml takes it from ANALYTICS_DBT_TARGET (see profile_environment).
    return DbtCliResource(
        project_dir=os.fspath(PROJECT_ROOT),
        profiles_dir=os.fspath(PROJECT_ROOT),
        dbt_executable=dbt_executable(),
    )


@contextlib.contextmanager
def profile_environment(settings: Settings) -> Iterator[None]:
    """Set the variables profiles.yml reads while dagster-dbt starts dbt, then restore them.

    DbtCliResource hands dbt a copy of this process's environment and takes no other, and the
    connection (password included) must not become resource config, which the UI displays.
    """
    wanted = dbt_environment(settings)
    saved = {name: os.environ.get(name) for name in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
