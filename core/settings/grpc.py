"""The gRPC AnalyticsService (`analytics grpc`, and inside `analytics up`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator

from core.settings.common import GivenPath, Host, NetworkList
from core.settings.schema import TopologySettings


class GrpcSettings(TopologySettings):
    grpc_host: Host = Field(
        "127.0.0.1",
        description="Address the gRPC service listens on (0.0.0.0 for every one; :: or [::] for IPv6 ones too).",
    )
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
        10.0, gt=0, le=86_400, description="Seconds a gRPC call may take when the client sets no deadline."
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
        2.0, ge=0, le=3600, description="Seconds a tail still waits for lines after its job's end has landed."
    )
    grpc_max_queued_calls: int = Field(
        1_000,
        ge=0,
        le=100_000,
        description="Calls that may wait for a worker beyond those running; more are RESOURCE_EXHAUSTED at once.",
    )
    grpc_lookup_batch: int = Field(
        64, ge=1, le=10_000, description="Lookups that arrive together answered by one ClickHouse query at most."
    )
    grpc_serving_max_staleness: float | None = Field(
        None,
        ge=0,
        le=60,
        description="Answer GetUserAnalytics and GetWorkflowAnalytics from an in-memory model of the totals kept "
        "fresh from ClickHouse, never from a state older than this many seconds (else from ClickHouse); 0: off; "
        "unset: on in `analytics up`, whose writes the model sees (read-your-writes), off over HTTP.",
    )
    grpc_serving_max_workflows: int = Field(
        2_000_000,
        ge=1,
        description="Workflows the serving model may hold (about 600 bytes each); with more in ClickHouse it turns "
        "itself off and lookups ask ClickHouse.",
    )
    grpc_serving_max_series_points: int = Field(
        3_000_000,
        ge=0,
        description="Time-series buckets the serving model may hold, of every user and granularity (100 to 200 bytes "
        "each); with more it frees them and time series ask ClickHouse.",
    )
    grpc_serving_poll_interval: float = Field(
        0.1, gt=0, le=10, description="Seconds between the serving model's reads of workflow_changes."
    )
    grpc_health_check_interval: float = Field(
        5.0,
        ge=0,
        le=3600,
        description="Seconds between the checks that ClickHouse answers; health is NOT_SERVING while it does not. "
        "0: off (SERVING while the service runs).",
    )
    grpc_drain_seconds: float = Field(
        10.0, ge=0, le=3600, description="Seconds calls in flight get to finish when the gRPC service stops."
    )
    grpc_tokens: SecretStr | None = Field(
        None, description="Bearer tokens of gRPC callers, TOKEN=USER_ID[,TOKEN=USER_ID...]; USER_ID * reads all."
    )
    grpc_tokens_file: GivenPath | None = Field(
        None, description="File of gRPC caller tokens, one 'TOKEN USER_ID' a line (# comments); adds to GRPC_TOKENS."
    )
    grpc_tls_cert: GivenPath | None = Field(
        None, description="PEM certificate chain of the gRPC service (turns TLS on)."
    )
    grpc_tls_key: GivenPath | None = Field(None, description="PEM private key of GRPC_TLS_CERT.")
    grpc_tls_client_ca: GivenPath | None = Field(
        None, description="PEM CA that signs client certificates; when set, clients must present one (mutual TLS)."
    )
    grpc_allowed_networks: NetworkList | None = Field(
        None,
        description="Addresses and CIDR networks, comma-separated, whose calls the gRPC service answers (loopback "
        "always; others PERMISSION_DENIED); unset: every address that reaches it.",
    )
    grpc_metrics_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="Port of the gRPC service's Prometheus /metrics on GRPC_HOST, behind GRPC_ALLOWED_NETWORKS; "
        "unset: off.",
    )

    @model_validator(mode="after")
    def _check_grpc_tls(self) -> GrpcSettings:
        if (self.grpc_tls_cert is None) != (self.grpc_tls_key is None):
            raise ValueError("ANALYTICS_GRPC_TLS_CERT and ANALYTICS_GRPC_TLS_KEY (--tls-cert, --tls-key) go together")
        if self.grpc_tls_client_ca is not None and self.grpc_tls_cert is None:
            raise ValueError(
                "ANALYTICS_GRPC_TLS_CLIENT_CA (mutual TLS) needs ANALYTICS_GRPC_TLS_CERT and ANALYTICS_GRPC_TLS_KEY"
            )
        return self
