"""The numbers the newer RPCs must give for a delivered data set, computed here from its events.

Per (user, workflow, day), following DESIGN.md's metrics and the days the schema documents:
a job counts on the day of its first delivered event (the earliest event of the first batch
that holds one of its events), outcomes and durations on the day the job ended, log entries on
the day they were logged, the legacy `analytics` events on the day they were delivered.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from tests.datasets import Dataset


def parse_time(text: str) -> dt.datetime:
    """An event's time as stored: in UTC (days are UTC days), to the millisecond (digits past it cut off)."""
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(dt.UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


@dataclass
class Counters:
    workflows: set = field(default_factory=set)
    jobs: int = 0
    joblogs: int = 0
    seconds: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    durations: list = field(default_factory=list)

    def add(self, other: Counters) -> None:
        self.workflows |= other.workflows
        self.jobs += other.jobs
        self.joblogs += other.joblogs
        self.seconds += other.seconds
        self.completed += other.completed
        self.failed += other.failed
        self.cancelled += other.cancelled
        self.durations += other.durations

    @property
    def success_rate(self) -> float | None:
        finished = self.completed + self.failed
        return self.completed / finished if finished else None

    @property
    def percentiles(self) -> tuple[float, ...] | None:
        """Nearest-rank percentiles p50, p90, p95, p99 (what a t-digest of few values gives)."""
        if not self.durations:
            return None
        ordered = sorted(self.durations)
        return tuple(ordered[max(math.ceil(q * len(ordered)) - 1, 0)] for q in (0.5, 0.9, 0.95, 0.99))


def unique(messages: Iterable[dict], key: str = "event_id") -> list[dict]:
    seen, result = set(), []
    for message in messages:
        if message[key] not in seen:
            seen.add(message[key])
            result.append(message)
    return result


def first_seen_days(jobs: list[dict], batch_size: int) -> dict[tuple, dt.date]:
    """(user, workflow, job) -> the day the job first appeared, batch by batch as delivered."""
    days: dict[tuple, dt.date] = {}
    for start in range(0, len(jobs), batch_size):
        earliest: dict[tuple, dt.datetime] = {}
        for message in jobs[start : start + batch_size]:
            key = (message["user_id"], message["workflow_id"], message["job_id"])
            if key not in days:
                moment = parse_time(message["event_time"])
                earliest[key] = min(moment, earliest.get(key, moment))
        days.update({key: moment.date() for key, moment in earliest.items()})
    return days


class DailyModel:
    """Counters per (user, workflow, day), with the kind of every workflow."""

    def __init__(self, dataset: Dataset, batch_size: int, delivery_day: dt.date):
        self.daily: dict[tuple, Counters] = defaultdict(Counters)
        self.kinds = dict(dataset.expected.kinds)
        messages = dataset.messages

        def at(user: str, workflow: str, day: dt.date) -> Counters:
            counters = self.daily[(user, workflow, day)]
            counters.workflows.add(workflow)
            return counters

        for event in unique(messages.get("workflows", [])):
            at(event["user_id"], event["workflow_id"], parse_time(event["event_time"]).date())
        for (user, workflow, _), day in first_seen_days(messages.get("jobs", []), batch_size).items():
            at(user, workflow, day).jobs += 1
        ended = set()
        for event in unique(messages.get("jobs", [])):
            job = (event["user_id"], event["workflow_id"], event["job_id"])
            outcome = event["event_name"]
            if outcome not in ("completed", "failed", "cancelled") or job in ended:
                continue
            ended.add(job)
            if outcome == "cancelled":
                at(*job[:2], parse_time(event["event_time"]).date()).cancelled += 1
                continue
            started, completed = parse_time(event["started_at"]), parse_time(event["completed_at"])
            milliseconds = (completed - started) // dt.timedelta(milliseconds=1)
            counters = at(*job[:2], completed.date())
            setattr(counters, outcome, getattr(counters, outcome) + 1)
            counters.seconds += milliseconds // 1000
            counters.durations.append(milliseconds / 1000)
        for event in unique(messages.get("job_logs", [])):
            at(event["user_id"], event["workflow_id"], parse_time(event["event_time"]).date()).joblogs += (
                event.get("count") or 1  # absent or null: one entry
            )
        for event in unique(messages.get("analytics", []), key="EventKey"):
            counters = at(event["UserID"], event["WorkflowID"], delivery_day)
            if event["EventType"] == "JOBS":
                duration = event["Data"]["job_execution_duration"]
                counters.jobs += 1
                counters.seconds += int(duration)
                counters.durations.append(duration)
            elif event["EventType"] == "LOGS":
                counters.joblogs += event["Data"]["count"]

    @property
    def users(self) -> list[str]:
        return sorted({user for user, _, _ in self.daily})

    def workflows(self, user: str) -> list[str]:
        return sorted({workflow for u, workflow, _ in self.daily if u == user})

    def total(
        self,
        user: str,
        workflow: str | None = None,
        kind: str | None = None,
        first: dt.date = dt.date.min,
        last: dt.date = dt.date.max,
    ) -> Counters:
        result = Counters()
        for (u, w, day), counters in self.daily.items():
            if u != user or (workflow is not None and w != workflow) or not first <= day <= last:
                continue
            if kind is not None and self.kinds.get((u, w)) != kind:
                continue
            result.add(counters)
        return result

    def series(
        self, user: str, granularity: str, workflow: str | None = None, kind: str | None = None
    ) -> dict[dt.date, Counters]:
        buckets: dict[dt.date, Counters] = defaultdict(Counters)
        for (u, w, day), counters in self.daily.items():
            if u != user or (workflow is not None and w != workflow):
                continue
            if kind is not None and self.kinds.get((u, w)) != kind:
                continue
            buckets[bucket_start(day, granularity)].add(counters)
        return dict(sorted(buckets.items()))


def bucket_start(day: dt.date, granularity: str) -> dt.date:
    if granularity == "week":
        return day - dt.timedelta(days=day.weekday())
    if granularity == "month":
        return day.replace(day=1)
    return day
