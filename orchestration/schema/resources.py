"""dbt for Dagster: the manifest it is built from and the dbt CLI resource that runs the models."""

import contextlib
import fcntl
import importlib.metadata
import json
import os
import shutil
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path

from dagster_dbt import DbtCliResource
from packaging import version

from core.settings.dagster import DagsterSettings
from operations.dbt import (
    FINGERPRINT_FILE,
    PROJECT_ROOT,
    dbt_environment,
    dbt_executable,
    default_target_path,
    project_fingerprint,
    run_dbt,
)


class ManifestError(RuntimeError):
    """`dbt parse` failed, so there is no asset graph to show."""


def dagster_dbt_dir(settings: DagsterSettings) -> Path:
    """Everything dbt writes for Dagster lives under the data directory, never in the repository."""
    return settings.data_dir.resolve() / "dbt" / "dagster"


def manifest_target_path(settings: DagsterSettings) -> Path:
    return dagster_dbt_dir(settings) / "manifest"


def adopt_manifest(source: Path, target_path: Path, fingerprint: str) -> bool:
    """Copy the manifest of another dbt run (``source``, a target directory) into ``target_path``
    when it was stamped with ``fingerprint``; False, copying nothing, when it was not.

    The stamp is read again after the copy: a build that started meanwhile removes it first, so a
    manifest it was rewriting is never taken.
    """
    stamp = source / FINGERPRINT_FILE
    if not (stamp.exists() and stamp.read_text() == fingerprint):
        return False
    copied = []
    try:
        for name in ("manifest.json", "partial_parse.msgpack"):
            if (source / name).exists():
                shutil.copyfile(source / name, target_path / name)
                copied.append(name)
        json.loads((target_path / "manifest.json").read_text())
        intact = "manifest.json" in copied and stamp.read_text() == fingerprint
    except (OSError, ValueError):
        intact = False
    if not intact:
        for name in copied:
            (target_path / name).unlink(missing_ok=True)
    return intact


def prepare_manifest(settings: DagsterSettings) -> Path:
    """Parse the dbt project (with this deployment's vars) unless nothing changed; return the manifest.

    So a fresh clone needs no pre-built target and an edited model shows up on reload. The
    webserver, the daemon and every run worker load the code location, often at the same time:
    a lock keeps them from writing the target directory together, and the fingerprint of what
    the manifest was parsed from spares them a parse each. The manifest of the last `dbt build`
    (`analytics migrate`, or `up` as it starts) is taken when it has the same fingerprint.
    """
    target_path = manifest_target_path(settings)
    target_path.mkdir(parents=True, exist_ok=True)
    manifest = target_path / "manifest.json"
    stamp = target_path / FINGERPRINT_FILE
    fingerprint = project_fingerprint(settings)
    with open(target_path / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if manifest.exists() and stamp.exists() and stamp.read_text() == fingerprint:
            return manifest
        stamp.unlink(missing_ok=True)
        # `analytics up` has just built the schema with the same project and vars: its manifest will do.
        if adopt_manifest(default_target_path(settings), target_path, fingerprint):
            stamp.write_text(fingerprint)
            return manifest
        result = run_dbt(settings, "parse", capture=True, target_path=target_path)
        if result.returncode != 0:
            raise ManifestError(
                f"dbt parse failed (exit {result.returncode}):\n{(result.stdout + result.stderr)[-3000:]}"
            )
        stamp.write_text(fingerprint)
    return manifest


class ProjectDbtResource(DbtCliResource):
    """DbtCliResource for the dbt of this environment.

    dagster-dbt asks its dbt executable for its version (`dbt --version`) once in every run that
    runs dbt: a process of its own, about 6 CPU-seconds of imports, before the dbt command itself.
    The executable here runs this virtual environment's dbt-core (``dbt_executable``: its own dbt,
    or a wrapper of it), so its version is the installed dbt-core's, read from the package's metadata.
    """

    @cached_property
    def _cli_version(self) -> version.Version:
        return version.parse(importlib.metadata.version("dbt-core"))


def dbt_resource(settings: DagsterSettings) -> DbtCliResource:
    # No target here: profiles.yml takes it from ANALYTICS_DBT_TARGET (see profile_environment).
    return ProjectDbtResource(
        project_dir=os.fspath(PROJECT_ROOT),
        profiles_dir=os.fspath(PROJECT_ROOT),
        dbt_executable=dbt_executable(settings),
    )


@contextlib.contextmanager
def profile_environment(settings: DagsterSettings) -> Iterator[None]:
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
