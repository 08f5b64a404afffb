"""`analytics migrate`: build the schema with dbt against the configured ClickHouse. Safe to repeat."""

from __future__ import annotations

import subprocess

from core.settings.schema import SchemaSettings
from operations.dbt import run_dbt


def migrate(settings: SchemaSettings, capture: bool = False) -> subprocess.CompletedProcess:
    """`dbt build`: create what is missing, update views in place, run every test. Safe to repeat."""
    return run_dbt(settings, "build", capture=capture)
