"""The schema (dbt): which ClickHouse it is built in, how events arrive in it, on what topology."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from core.settings.clickhouse import ClickHouseSettings
from core.settings.common import CommonSettings, GivenPath
from core.settings.kafka import KafkaSettings


class TopologySettings(BaseModel):
    cluster: str = Field("", description="ClickHouse cluster for ON CLUSTER DDL and Replicated engines (server mode).")


class SchemaSettings(CommonSettings, ClickHouseSettings, KafkaSettings, TopologySettings):
    """What `analytics migrate` and the other dbt runs build, and where (dbt target and vars)."""

    dbt_target: Literal["embedded", "server"] = Field(
        "embedded", description="dbt target: the embedded server, or a ClickHouse server/cluster."
    )
    dbt_executable: GivenPath | None = Field(
        None,
        description="The program run as dbt: this environment's dbt-core, or a wrapper that runs it"
        " [default: the dbt installed beside analytics].",
    )
    ingest: Literal["direct", "kafka"] | None = Field(
        None, description="Landing tables: direct (Null, fed over HTTP) or kafka (Kafka engine) [default: by target]."
    )

    @field_validator("dbt_executable")
    @classmethod
    def _check_dbt_executable(cls, path: Path | None) -> Path | None:
        # Else every dbt run ended in a FileNotFoundError's or an exec format error's traceback.
        if path is not None and not (path.is_file() and os.access(path, os.X_OK)):
            raise ValueError(f"{path} is not a program this user can run")
        return path

    # Unset, a run keeps the retention the database has: restarting without these never ends
    # audit mode or shortens a retention (dbt_project/macros/retention.sql).
    log_retention_hours: int | None = Field(
        None,
        ge=1,
        le=1_000_000,
        description="Hours raw job log lines are kept (counts never expire; to keep lines for ever: audit mode)"
        " [default: the retention the database has; 720 for a new one].",
    )
    audit_mode: bool | None = Field(
        None,
        description="Keep every raw log line forever; false ends it (for log_retention_hours, else 720)"
        " [default: as the database has it].",
    )

    @model_validator(mode="after")
    def _check_retention(self) -> SchemaSettings:
        # Both given, the dbt run took audit mode and the hours were ignored without a word.
        if self.audit_mode and self.log_retention_hours is not None:
            raise ValueError(
                "ANALYTICS_AUDIT_MODE=true keeps every log line, ANALYTICS_LOG_RETENTION_HOURS drops them after"
                f" {self.log_retention_hours} hours: give one of them"
            )
        return self

    reconcile_settle_seconds: float | None = Field(
        None,
        ge=0,
        le=86_400,
        description="The reconciliation checks leave out workflows with raw rows this recent, besides those of"
        " inserts still running [default: 10 with kafka ingest, whose inserts are not queries; else 0].",
    )

    @property
    def resolved_ingest(self) -> str:
        return self.ingest or ("kafka" if self.dbt_target == "server" else "direct")

    @property
    def resolved_reconcile_settle_seconds(self) -> float:
        if self.reconcile_settle_seconds is not None:
            return self.reconcile_settle_seconds
        return 10.0 if self.resolved_ingest == "kafka" else 0.0
