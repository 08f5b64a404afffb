"""The one settings object of every `analytics` entry point.

Values come from, in order of precedence: command-line flags, ``ANALYTICS_*`` environment
variables, then the defaults below. Read once at start-up and passed down; nothing else in the
project reads the environment.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


@dataclasses.dataclass(frozen=True)
class ClickHouseConnection:
    host: str
    port: int
    user: str
    password: str = dataclasses.field(repr=False)
    secure: bool


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
    clickhouse_secure: bool = Field(False, description="Use HTTPS to reach ClickHouse (server mode).")
    clickhouse_max_concurrent_queries: int = Field(64, description="Queries the embedded server runs at once.")
    clickhouse_allow_file_access: bool = Field(
        False,
        description="Let SQL sent to the embedded ClickHouse read and write the server's files and reach the network "
        "(file(), url(), INTO OUTFILE, File/URL/S3 engines), as clickhouse-local does.",
    )

    # The schema (dbt) and how events arrive in it.
    dbt_target: Literal["embedded", "server"] = Field(
        "embedded", description="dbt target: the embedded server, or a ClickHouse server/cluster."
    )
    ingest: Literal["direct", "kafka"] | None = Field(
        None, description="Landing tables: direct (Null, fed over HTTP) or kafka (Kafka engine) [default: by target]."
    )
    cluster: str = Field("", description="ClickHouse cluster for ON CLUSTER DDL and Replicated engines (server mode).")
    log_retention_hours: int = Field(720, description="Hours raw job log lines are kept (counts never expire).")
    audit_mode: bool = Field(False, description="Keep every raw log line forever.")
    kafka_topic_prefix: str = Field("", description="Prepended to every topic name (e.g. 'prod.').")
    kafka_consumer_group_prefix: str = Field("analytics", description="Consumer groups are PREFIX_<topic>.")
    kafka_consumers: int = Field(1, description="Consumers per topic (Kafka engine and bridge).")
    kafka_max_block_size: int = Field(65536, description="Messages per insert (Kafka engine and bridge).")
    kafka_flush_interval_ms: int = Field(250, description="Longest wait before a partial batch is inserted.")

    kafka_bootstrap: str | None = Field(
        None, description="Kafka bootstrap servers, HOST:PORT[,HOST:PORT...]; unset means no Kafka."
    )
    kafka_topic_partitions: int = Field(1, ge=1, description="Partitions of each topic `analytics topics` creates.")
    ingest_metrics_port: int = Field(
        9363, ge=0, le=65535, description="Port of `analytics ingest`'s Prometheus /metrics on 127.0.0.1; 0: off."
    )

    # The local Apache Kafka of `analytics kafka` (a single KRaft node on 127.0.0.1).
    kafka_port: int = Field(9092, ge=1, le=65535, description="Port of the local Kafka broker.")
    kafka_controller_port: int | None = Field(
        None, ge=1, le=65535, description="KRaft controller port of the local Kafka [default: a free port]."
    )
    kafka_data_dir: Path | None = Field(None, description="Local Kafka data directory [default: DATA_DIR/kafka-data].")
    kafka_stop_timeout: float = Field(
        30.0, gt=0, description="Seconds the local Kafka gets to shut down on SIGTERM before it is killed."
    )

    # The gRPC AnalyticsService (`analytics grpc`, and inside `analytics up`).
    grpc_host: str = Field("127.0.0.1", description="Address the gRPC service listens on (0.0.0.0 for every one).")
    grpc_port: int = Field(50055, ge=1, le=65535, description="Port of the gRPC AnalyticsService.")
    grpc_workers: int = Field(
        8, ge=1, le=256, description="Worker threads of the gRPC service; each has its own ClickHouse connection."
    )
    grpc_id_format: Literal["plain", "uuid"] = Field(
        "plain",
        description="Ids the gRPC service accepts: plain (1-128 letters, digits, - _ . :) or uuid.",
    )
    grpc_reflection: bool = Field(True, description="Register gRPC server reflection (what `grpcurl list` uses).")
    grpc_default_deadline: float = Field(
        10.0, gt=0, description="Seconds a gRPC call may take when the client sets no deadline."
    )
    grpc_max_log_tails: int = Field(
        256,
        ge=1,
        le=4096,
        description="StreamJobLogs calls served at once (each holds a thread); more are RESOURCE_EXHAUSTED.",
    )
    grpc_log_tail_interval: float = Field(
        0.25, gt=0, le=10, description="Seconds between the polls that feed every StreamJobLogs tail."
    )
    grpc_log_tail_linger: float = Field(
        2.0, ge=0, description="Seconds a tail still waits for lines after its job's end has landed."
    )
    grpc_max_queued_calls: int = Field(
        64,
        ge=0,
        le=100_000,
        description="Calls that may wait for a worker beyond those running; more are RESOURCE_EXHAUSTED at once.",
    )
    grpc_lookup_batch: int = Field(
        64, ge=1, le=10_000, description="Lookups that arrive together answered by one ClickHouse query at most."
    )
    grpc_serving_max_staleness: float = Field(
        0.0,
        ge=0,
        le=60,
        description="Answer GetUserAnalytics and GetWorkflowAnalytics from an in-memory model of the totals kept "
        "fresh from ClickHouse, never from a state older than this many seconds (else from ClickHouse); 0: off.",
    )
    grpc_serving_poll_interval: float = Field(
        0.1, gt=0, le=10, description="Seconds between the serving model's reads of workflow_changes."
    )
    grpc_drain_seconds: float = Field(
        10.0, ge=0, description="Seconds calls in flight get to finish when the gRPC service stops."
    )
    grpc_tokens: SecretStr | None = Field(
        None, description="Bearer tokens of gRPC callers, TOKEN=USER_ID[,TOKEN=USER_ID...]; USER_ID * reads all."
    )
    grpc_tokens_file: Path | None = Field(
        None, description="File of gRPC caller tokens, one 'TOKEN USER_ID' a line (# comments); adds to GRPC_TOKENS."
    )
    grpc_tls_cert: Path | None = Field(None, description="PEM certificate chain of the gRPC service (turns TLS on).")
    grpc_tls_key: Path | None = Field(None, description="PEM private key of GRPC_TLS_CERT.")
    grpc_tls_client_ca: Path | None = Field(
        None, description="PEM CA that signs client certificates; when set, clients must present one (mutual TLS)."
    )
    grpc_metrics_port: int | None = Field(
        None, ge=1, le=65535, description="Port of the gRPC service's Prometheus /metrics on GRPC_HOST; unset: off."
    )

    # Dagster: the orchestration UI, backfills and pipeline checks.
    dagster_enabled: bool = Field(True, description="Run the Dagster webserver and daemon with `analytics up`.")
    dagster_host: str = Field("127.0.0.1", description="Address the Dagster webserver listens on.")
    dagster_port: int = Field(3000, ge=1, le=65535, description="Port of the Dagster webserver.")
    dagster_home: Path | None = Field(
        None, description="Dagster's instance directory (runs, schedules) [default: DATA_DIR/dagster]."
    )
    backfill_start_date: dt.date = Field(
        dt.date(2025, 1, 1), description="First day (UTC) the daily reconciliation partitions cover."
    )
    health_check_interval_seconds: int = Field(
        900, ge=30, description="How often the health sensor runs the pipeline checks."
    )
    freshness_max_age_minutes: int = Field(
        60, ge=1, description="A topic whose newest event is older than this fails its freshness check."
    )
    dead_letter_window_minutes: int = Field(
        60, ge=1, description="Dead letters received within this window fail the dead-letter check."
    )
    consumer_lag_max: int = Field(
        10_000, ge=0, description="Messages a consumer group may lag behind on a partition before its check fails."
    )

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
    def resolved_kafka_data_dir(self) -> Path:
        return self.kafka_data_dir or self.data_dir / "kafka-data"

    @property
    def kafka_jars_dir(self) -> Path:
        """Cache of the Kafka jars Maven fetches, one folder per Kafka version."""
        return self.data_dir / "kafka"

    @property
    def resolved_dagster_home(self) -> Path:
        return self.dagster_home or self.data_dir / "dagster"

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

    @field_validator("kafka_bootstrap")
    @classmethod
    def _check_bootstrap(cls, value: str | None) -> str | None:
        if value is None:
            return None
        for server in value.split(","):
            host, _, port = server.strip().rpartition(":")
            if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
                raise ValueError(f"{server.strip()!r} is not HOST:PORT")
        return value

    @model_validator(mode="after")
    def _check_grpc_tls(self) -> Settings:
        if (self.grpc_tls_cert is None) != (self.grpc_tls_key is None):
            raise ValueError("ANALYTICS_GRPC_TLS_CERT and ANALYTICS_GRPC_TLS_KEY (--tls-cert, --tls-key) go together")
        if self.grpc_tls_client_ca is not None and self.grpc_tls_cert is None:
            raise ValueError(
                "ANALYTICS_GRPC_TLS_CLIENT_CA (mutual TLS) needs ANALYTICS_GRPC_TLS_CERT and ANALYTICS_GRPC_TLS_KEY"
            )
        return self

    @property
    def resolved_clickhouse_url(self) -> str:
        if self.clickhouse_url:
            return self.clickhouse_url
        host = "127.0.0.1" if self.clickhouse_host in ("0.0.0.0", "::") else self.clickhouse_host
        return f"http://{host}:{self.clickhouse_http_port}"

    @property
    def clickhouse_connection(self) -> ClickHouseConnection:
        """Where and how clients reach ClickHouse: the URL's parts, else the embedded server's settings."""
        url = urlsplit(self.resolved_clickhouse_url)
        secure = url.scheme == "https" or self.clickhouse_secure
        return ClickHouseConnection(
            host=url.hostname or "127.0.0.1",
            port=url.port or (8443 if secure else 8123),
            user=unquote(url.username) if url.username else self.clickhouse_user,
            password=unquote(url.password) if url.password else self.clickhouse_password.get_secret_value(),
            secure=secure,
        )

    @property
    def resolved_ingest(self) -> str:
        return self.ingest or ("kafka" if self.dbt_target == "server" else "direct")


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
