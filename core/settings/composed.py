"""The one Settings object: every component's slice, read once from the environment at start-up.

Values come from, in order of precedence: command-line flags, ``ANALYTICS_*`` environment
variables, then each slice's defaults. Only the wiring builds it (the `analytics` command, and the
Dagster code location's entry point, which Dagster starts in processes of its own); every other
module receives the slice it needs (`settings.slice(GrpcSettings)`) and never reads the
environment.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.settings.clickhouse import EmbeddedClickHouseSettings
from core.settings.common import CommonSettings
from core.settings.dagster import DagsterSettings
from core.settings.demo import DemoSettings
from core.settings.grpc import GrpcSettings
from core.settings.kafka import KafkaSettings, LocalKafkaSettings
from core.settings.schema import SchemaSettings

Slice = TypeVar("Slice", bound=BaseModel)

# The slices in the order `analytics --help` lists their variables.
SECTIONS: tuple[type[BaseModel], ...] = (
    CommonSettings,
    EmbeddedClickHouseSettings,
    SchemaSettings,
    KafkaSettings,
    LocalKafkaSettings,
    GrpcSettings,
    DagsterSettings,
    DemoSettings,
)


class Settings(
    BaseSettings,
    EmbeddedClickHouseSettings,
    LocalKafkaSettings,
    DagsterSettings,
    GrpcSettings,
    DemoSettings,
):
    # No setting is endless: an `inf` of seconds overflows the clock a wait or a deadline is set on.
    model_config = SettingsConfigDict(env_prefix="ANALYTICS_", extra="forbid", allow_inf_nan=False)

    def slice(self, part: type[Slice]) -> Slice:
        """The fields of one component's slice, already validated here, as an object of that slice."""
        return part.model_construct(**{name: getattr(self, name) for name in part.model_fields})

    def as_environment(self) -> dict[str, str]:
        """These settings as ANALYTICS_* variables, for a child process that builds its own Settings."""
        environment = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            elif isinstance(value, bool):
                value = "true" if value else "false"
            elif isinstance(value, Path):
                value = value.resolve()  # the child may start elsewhere
            elif isinstance(value, dt.date):
                value = value.isoformat()
            environment[f"ANALYTICS_{name.upper()}"] = str(value)
        return environment


def environment_help() -> str:
    """One line per setting: its variable, default and meaning (for `analytics --help`)."""
    lines, seen = [], set()
    for section in SECTIONS:
        for name, field in section.model_fields.items():
            if name in seen:
                continue
            seen.add(name)
            default = field.default
            if isinstance(default, SecretStr):
                default = "(empty)" if not default.get_secret_value() else "(set)"
            shown = "" if default is None else f" [default: {default}]"
            lines.append(f"ANALYTICS_{name.upper()}{shown}\n    {field.description}")
    missing = set(Settings.model_fields) - seen
    assert not missing, f"settings not in any section: {missing}"
    return "\n".join(lines)
