"""The days ClickHouse's `Date` holds, in which the aggregates keep each event's day.

`toDate` wraps a time outside them around (a time of 2250 lands in 2070), so the event contract
refuses such times, and the gRPC date ranges, backfills and reconciliation partitions stay inside.
"""

from __future__ import annotations

import datetime as dt

FIRST_DAY = dt.date(1970, 1, 1)
LAST_DAY = dt.date(2149, 6, 6)
RANGE_TEXT = f"{FIRST_DAY} to {LAST_DAY}"
