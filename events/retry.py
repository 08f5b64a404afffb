"""Whether a failed delivery is worth retrying, and how long to wait before the next attempt."""

from __future__ import annotations

from core.errors import PRODUCER_RETRYABLE_ERRORS

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
        return code in PRODUCER_RETRYABLE_ERRORS
    return status >= 500 or status in RETRYABLE_HTTP_STATUSES


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Seconds to wait after failed attempt number `attempt` (0-based): base, 2*base, 4*base ... up to cap."""
    return min(cap, base * (2 ** min(attempt, 64)))  # 2**1100 is beyond a float: a long outage raised
