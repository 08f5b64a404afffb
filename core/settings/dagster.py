"""Dagster: the orchestration UI, backfills and pipeline checks."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pydantic import Field

from core.days import FIRST_DAY, LAST_DAY
from core.settings.common import Directory, Host
from core.settings.schema import SchemaSettings


class DagsterSettings(SchemaSettings):
    dagster_enabled: bool = Field(True, description="Run the Dagster webserver and daemon with `analytics up`.")
    dagster_host: Host = Field("127.0.0.1", description="Address the Dagster webserver listens on.")
    dagster_port: int = Field(3000, ge=1, le=65535, description="Port of the Dagster webserver.")
    dagster_home: Directory | None = Field(
        None, description="Dagster's instance directory (runs, schedules) [default: DATA_DIR/dagster]."
    )
    backfill_start_date: dt.date = Field(
        dt.date(2025, 1, 1),
        ge=FIRST_DAY,
        le=LAST_DAY,
        description="First day (UTC) the daily reconciliation partitions cover (one of the days the aggregates hold).",
    )
    health_check_interval_seconds: int = Field(
        900, ge=30, description="How often the health sensor runs the pipeline checks."
    )
    freshness_max_age_minutes: int = Field(
        60, ge=1, le=1_000_000, description="A topic whose newest event is older than this fails its freshness check."
    )
    dead_letter_window_minutes: int = Field(
        60, ge=1, le=1_000_000, description="Dead letters received within this window fail the dead-letter check."
    )
    consumer_lag_max: int = Field(
        10_000, ge=0, description="Messages a consumer group may lag behind on a partition before its check fails."
    )

    @property
    def resolved_dagster_home(self) -> Path:
        return self.dagster_home or self.data_dir / "dagster"
