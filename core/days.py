"""The days ClickHouse's `Date` holds, in which the aggregates keep each event's day.

`toDate` wraps a time outside them around (a time of 2250 lands in 2070), so the event contract
refuses such times, and the gRPC date ranges, backfills and reconciliation partitions stay inside.
"""

from __future__ import annotations

import datetime as dt

FIRST_DAY = dt.date(1970, 1, 1)
LAST_DAY = dt.date(2149, 6, 6)
RANGE_TEXT = f"{FIRST_DAY} to {LAST_DAY}"

MOMENT_FORMAT = "YYYY-MM-DD[THH:MM[:SS[.fff]]] with Z, an offset such as +02:00, or neither (UTC)"


def utc_moment(value: str | dt.datetime) -> dt.datetime:
    """A time in ISO 8601, as the events carry them (`2026-11-24`, `2026-11-24T08:00:00Z`,
    `2026-11-24 08:00+02:00`; UTC without an offset), in UTC. ValueError names what it expects."""
    if isinstance(value, dt.datetime):
        moment = value
    else:
        try:
            moment = dt.datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a time written {MOMENT_FORMAT}") from None
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)
