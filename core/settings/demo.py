"""`analytics demo` and `analytics up --demo`: realistic traffic through the events SDK."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from core.settings.kafka import IngestSettings


class DemoSettings(IngestSettings):
    # Bounded by what one generator keeps up with: above, it planned each interval's events before
    # sending one and never caught up; a user table of 10**20 entries filled the memory unsaid.
    demo_rate: float = Field(50.0, gt=0, le=10_000, description="Events per second the demo generates.")
    demo_users: int = Field(20, ge=1, le=10_000, description="Users the demo simulates.")
    demo_sink: Literal["clickhouse", "kafka", "logger"] | None = Field(
        None, description="Where the demo sends events [default: kafka if KAFKA_BOOTSTRAP is set, else clickhouse]."
    )
