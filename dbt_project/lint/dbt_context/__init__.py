"""What dbt and dbt-clickhouse put in a model's Jinja context, for sqlfluff's jinja templater (.sqlfluff).

sqlfluff renders each model without a database: vars are the defaults in dbt_project.yml, nothing
executes (`execute` is false, as in dbt's parse), and the few adapter macros the models call
render as dbt-clickhouse renders them.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import yaml
from sqlfluff.core.templaters.builtins.dbt import DBT_BUILTINS

_VARS = yaml.safe_load((Path(__file__).resolve().parents[3] / "dbt_project.yml").read_text())["vars"]

execute = False
flags = SimpleNamespace(WHICH="compile")
modules = SimpleNamespace(re=re)
# dbt's own `ref`, which the project's `ref` (dbt_project/macros/refs.sql) calls.
builtins = SimpleNamespace(ref=DBT_BUILTINS["ref"])


def var(name: str, default=None):
    if name in _VARS:
        return _VARS[name]
    if default is None:
        raise KeyError(f"var {name!r} is not in dbt_project.yml and has no default")
    return default


def _raise_compiler_error(message: str) -> None:
    raise RuntimeError(message)


exceptions = SimpleNamespace(raise_compiler_error=_raise_compiler_error)


def materialization_target_table(relation) -> str:
    """dbt-clickhouse's marker of a materialized view's target (materializations/materialized_view.sql)."""
    return f"-- materialization_target_table: {relation}"
