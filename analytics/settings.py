"""The one settings object of every `analytics` entry point.

Values come from, in order of precedence: command-line flags, ``ANALYTICS_*`` environment
variables, then the defaults below. Read once at start-up and passed down; nothing else in the
project reads the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ANALYTICS_", extra="forbid")

    data_dir: Path = Field(Path(".analytics"), description="Root of all runtime data (chDB, Kafka, Dagster).")

    # The embedded ClickHouse (chDB behind the ClickHouse HTTP interface).
    clickhouse_data_dir: Path | None = Field(None, description="chDB data directory [default: DATA_DIR/clickhouse].")
    clickhouse_host: str = Field("127.0.0.1", description="Address the embedded ClickHouse listens on.")
    clickhouse_http_port: int = Field(8123, description="HTTP port of the embedded ClickHouse.")
    clickhouse_user: str = Field("default", description="ClickHouse user (embedded server and clients).")
    clickhouse_password: SecretStr = Field(SecretStr(""), description="ClickHouse password.")
    clickhouse_url: str | None = Field(
        None, description="ClickHouse to use in server mode, e.g. https://ch.example:8443 [default: the embedded one]."
    )
    clickhouse_max_concurrent_queries: int = Field(64, description="Queries the embedded server runs at once.")

    kafka_bootstrap: str | None = Field(None, description="Kafka bootstrap servers; unset means no Kafka.")
    grpc_port: int = Field(50055, description="Port of the gRPC AnalyticsService.")

    log_level: str = Field("INFO", description="Log level of every component.")

    # `analytics demo`
    demo_rate: float = Field(50.0, gt=0, description="Events per second the demo generates.")
    demo_users: int = Field(20, ge=1, description="Users the demo simulates.")
    demo_sink: Literal["clickhouse", "kafka", "logger"] | None = Field(
        None, description="Where the demo sends events [default: kafka if KAFKA_BOOTSTRAP is set, else clickhouse]."
    )

    @property
    def resolved_clickhouse_data_dir(self) -> Path:
        return self.clickhouse_data_dir or self.data_dir / "clickhouse"

    @property
    def resolved_clickhouse_url(self) -> str:
        return self.clickhouse_url or f"http://{self.clickhouse_host}:{self.clickhouse_http_port}"


def environment_help() -> str:
    """One line per setting: its variable, default and meaning (for `analytics --help`)."""
    lines = []
    for name, field in Settings.model_fields.items():
        default = field.default
        if isinstance(default, SecretStr):
            default = "(empty)" if not default.get_secret_value() else "(set)"
        shown = "" if default is None else f" [default: {default}]"
        lines.append(f"ANALYTICS_{name.upper()}{shown}\n    {field.description}")
    return "\n".join(lines)
