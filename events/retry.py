"""Whether a failed delivery is worth retrying, and how long to wait before the next attempt."""

from __future__ import annotations

# ClickHouse exception codes of passing conditions: overload, timeouts, network, replicas catching up.
RETRYABLE_CLICKHOUSE_CODES = frozenset(
    {
        159,  # TIMEOUT_EXCEEDED
        202,  # TOO_MANY_SIMULTANEOUS_QUERIES
        203,  # NO_FREE_CONNECTION
        209,  # SOCKET_TIMEOUT
        210,  # NETWORK_ERROR
        236,  # ABORTED
        241,  # MEMORY_LIMIT_EXCEEDED
        242,  # TABLE_IS_READ_ONLY
        252,  # TOO_MANY_PARTS
        279,  # ALL_CONNECTION_TRIES_FAILED
        285,  # TOO_FEW_LIVE_REPLICAS
        319,  # UNKNOWN_STATUS_OF_INSERT
        364,  # RECEIVED_ERROR_TOO_MANY_REQUESTS
        373,  # SESSION_IS_LOCKED
        394,  # QUERY_WAS_CANCELLED
        425,  # SYSTEM_ERROR
        439,  # CANNOT_SCHEDULE_TASK
        999,  # KEEPER_EXCEPTION
        1000,  # POCO_EXCEPTION
    }
)
RETRYABLE_HTTP_STATUSES = frozenset({408, 429})


def is_retryable(status: int | None, code: int | None) -> bool:
    """The one retry decision. `status` None means no HTTP answer at all (connection error, timeout).

    A ClickHouse exception code decides when there is one, because ClickHouse reports many
    permanent errors (a violated constraint, for one) with status 500. Without a code, the status
    does: 5xx, 408 and 429 are passing; other 4xx are permanent.
    """
    if status is None:
        return True
    if code is not None:
        return code in RETRYABLE_CLICKHOUSE_CODES
    return status >= 500 or status in RETRYABLE_HTTP_STATUSES


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Seconds to wait after failed attempt number `attempt` (0-based): base, 2*base, 4*base ... up to cap."""
    return min(cap, base * (2**attempt))
