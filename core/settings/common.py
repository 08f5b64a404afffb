"""What every component shares: where runtime data lives and how much it logs."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field


class CommonSettings(BaseModel):
    data_dir: Path = Field(Path(".analytics"), description="Root of all runtime data (chDB, Kafka, Dagster).")
    log_level: str = Field("INFO", description="Log level of every component.")
