"""Each user's time series, as the serving model holds them: every bucket of every granularity.

A bucket's distinct workflows and its duration percentiles cannot be added up from its days', so
the model keeps each granularity's buckets as ClickHouse computed them (server/serving_reads.py:
the statement of Queries.time_series, grouped by user as well). Packed in arrays, a bucket holds
its first day, seven counters and four percentiles (NaN: no finished job) in 92 bytes, about 180
with each series' own overhead at 16 buckets a user (measured with tracemalloc).

From these a series over a range of days is exact only when the range cuts no bucket in two: any
range by day; by week from a Monday to a Sunday; by month from a first to a last day of a month
(either end may be open). Other ranges read the daily tables.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from array import array
from bisect import bisect_left, bisect_right
from dataclasses import dataclass

from server.queries import Summary, percentiles_of
from server.validation import FIRST_DAY, LAST_DAY, Period

log = logging.getLogger(__name__)

EPOCH = dt.date(1970, 1, 1).toordinal()  # a bucket's first day arrives as days since 1970-01-01
COUNTERS = 7  # workflows, jobs, joblogs, seconds, completed, failed, cancelled
NO_PERCENTILES = (math.nan,) * 4


@dataclass(frozen=True, slots=True)
class Series:
    """One user's buckets of one granularity, oldest first."""

    days: array  # each bucket's first day, as days since 1970-01-01
    counters: array  # COUNTERS a bucket
    percentiles: array  # four a bucket (p50, p90, p95, p99)

    def points(self, first: dt.date, last: dt.date) -> list[tuple[dt.date, Summary]]:
        """The buckets that begin between ``first`` and ``last`` (both included)."""
        start = bisect_left(self.days, first.toordinal() - EPOCH)
        end = bisect_right(self.days, last.toordinal() - EPOCH)
        found = []
        for n in range(start, end):
            counters = self.counters[n * COUNTERS : (n + 1) * COUNTERS]
            percentiles = self.percentiles[n * 4 : (n + 1) * 4]
            summary = Summary(*counters, None if math.isnan(percentiles[0]) else tuple(percentiles))
            found.append((dt.date.fromordinal(EPOCH + self.days[n]), summary))
        return found

    def __len__(self) -> int:
        return len(self.days)


def bucket_start(day: dt.date, granularity: str) -> dt.date:
    """The first day of the bucket of ``granularity`` that holds ``day`` (a week's Monday may be in 1969)."""
    if granularity == "week":
        return day - dt.timedelta(days=day.weekday())
    if granularity == "month":
        return day.replace(day=1)
    return day


def uncut(period: Period, granularity: str) -> bool:
    """Whether ``period`` cuts no bucket of ``granularity`` in two (so whole buckets answer it)."""
    after = period.last + dt.timedelta(days=1)
    if granularity == "week":
        return (period.first == FIRST_DAY or period.first.weekday() == 0) and (
            period.last == LAST_DAY or after.weekday() == 0
        )
    if granularity == "month":
        return period.first.day == 1 and (period.last == LAST_DAY or after.day == 1)
    return True


def series_of(rows: list[list]) -> dict[str, dict[str, Series]]:
    """Each user's series from the rows of a series read (SERIES_SELECT in server/serving_reads.py).

    A bucket is one with counters; its percentiles, when it has any, come in a row of their own.
    """
    percentiles: dict[tuple[str, str, int], tuple[float, ...]] = {}
    counted: list[list] = []
    for row in rows:
        if row[0] == "counters":
            counted.append(row)
        else:
            found = percentiles_of(row[4 + COUNTERS])
            if found is not None:
                percentiles[row[1], row[2], int(row[3])] = found
    built: dict[tuple[str, str], tuple[array, array, array]] = {}
    for _, user_id, granularity, day, *rest in sorted(counted, key=lambda row: (row[1], row[2], int(row[3]))):
        days, counters, digests = built.setdefault((user_id, granularity), (array("i"), array("q"), array("d")))
        days.append(int(day))
        counters.extend(int(value) for value in rest[:COUNTERS])
        digests.extend(percentiles.get((user_id, granularity, int(day)), NO_PERCENTILES))
    users: dict[str, dict[str, Series]] = {}
    for (user_id, granularity), arrays in built.items():
        users.setdefault(user_id, {})[granularity] = Series(*arrays)
    return users


def points_held(series: dict[str, Series]) -> int:
    return sum(len(one) for one in series.values())


class HeldSeries:
    """Every user's series, at most ``max_points`` buckets in all: beyond that it frees them for good,
    and time series ask ClickHouse. Replaced user by user, each user's entry whole, so readers need
    no lock.
    """

    def __init__(self, max_points: int):
        self.max_points = max_points
        self.off: str | None = None  # why it holds none, if it does not
        self._users: dict[str, dict[str, Series]] = {}
        self._points = 0

    @property
    def points(self) -> int:
        return self._points

    def of(self, user_id: str, granularity: str) -> Series | None:
        return self._users.get(user_id, {}).get(granularity)

    def replace_all(self, users: dict[str, dict[str, Series]]) -> None:
        if self.off is None:
            self._users, self._points = users, sum(points_held(one) for one in users.values())
            self.check_points(self._points)

    def replace(self, user_ids, users: dict[str, dict[str, Series]]) -> None:
        """The series of ``user_ids`` as ``users`` gives them; one it does not name has none."""
        for user_id in user_ids if self.off is None else ():
            found = users.get(user_id)
            self._points += points_held(found or {}) - points_held(self._users.get(user_id, {}))
            if found:
                self._users[user_id] = found
            else:
                self._users.pop(user_id, None)
        self.check_points(self._points)

    def clear(self) -> None:
        self._users, self._points = {}, 0

    def check_points(self, points: int) -> None:
        """Beyond ``max_points`` buckets (held, or about to be read): free them, and hold none from now on."""
        if points > self.max_points and self.off is None:
            self.off = (
                f"the serving model holds no time series: more than {self.max_points:,} buckets "
                "(ANALYTICS_GRPC_SERVING_MAX_SERIES_POINTS)"
            )
            log.warning("%s; time series ask ClickHouse", self.off)
            self.clear()
