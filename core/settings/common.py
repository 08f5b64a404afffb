"""What every component shares: where runtime data lives and how much it logs."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, field_validator

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class CommonSettings(BaseModel):
    data_dir: Path = Field(Path(".analytics"), description="Root of all runtime data (chDB, Kafka, Dagster).")
    log_level: str = Field("INFO", description="Log level of every component: DEBUG, INFO, WARNING, ERROR or CRITICAL.")

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        if value.upper() not in LOG_LEVELS:
            raise ValueError(f"{value!r} is not one of {', '.join(LOG_LEVELS)}")
        return value.upper()
