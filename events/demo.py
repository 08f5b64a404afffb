"""A realistic, repeatable stream of workflow, job and log events, for `analytics demo`.

Users own HEARTBEAT and CONTAINER workflows. Workflows are created, sometimes updated or
deleted, and terminated after three failed jobs in a row. Jobs go created -> started ->
completed or failed, with durations typical of their kind; a few are cancelled (before or while
running) and a few never finish. Running jobs write logs in bursts. A share of the workflows
report the way the scheduler does today, through the `analytics` compatibility topic. Every five
seconds the scheduler records how many jobs are running (a `metric`, on the telemetry topic). Now
and then an event is delivered twice, as at-least-once delivery does.

It is a discrete-event simulation: `DemoGenerator.advance(until)` returns everything that
happened up to `until`, so a fake clock and a seed give the same stream every time.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial

from events.clickhouse import ClickHouseSink
from events.client import Client, ClientStats
from events.event import AnalyticsCompatEvent, AnyEvent, Event, format_time
from events.kafka import KafkaSink
from events.sinks import DeliveryError, DeliveryStats, LoggerSink, Sink

KINDS = ("HEARTBEAT", "CONTAINER")
FAILURES_BEFORE_TERMINATION = 3
METRIC_INTERVAL = 5.0
MAX_ACTIVE_WORKFLOWS_PER_USER = 6

_LOG_LINES = {
    "HEARTBEAT": ["GET /health 200", "heartbeat ok", "endpoint answered slowly", "retrying probe"],
    "CONTAINER": ["pulling image", "container started", "step finished", "writing results", "exit code 0"],
}

Outbox = list[AnyEvent]


@dataclass
class _Workflow:
    user_id: str
    workflow_id: str
    kind: str
    legacy: bool  # reports through the `analytics` compatibility topic
    failure_rate: float
    state: str = "active"  # active | terminated | deleted
    failures_in_a_row: int = 0


@dataclass
class _Job:
    workflow: _Workflow
    job_id: str
    scheduled_at: float
    steps: list[tuple[float, str, int]] = field(default_factory=list)  # (when, what, log count), in order
    status: str = "pending"
    started_at: float | None = None
    completed_at: float | None = None
    log_sequence: int = 0


class DemoGenerator:
    """The simulation. About `rate` events per second are planned, so the stream follows the rate
    once jobs started earlier are finishing; `start` is the simulated time it begins at."""

    def __init__(
        self,
        *,
        users: int = 10,
        rate: float = 50.0,
        start: float,
        seed: int | None = None,
        duplicate_rate: float = 0.01,
        legacy_share: float = 0.1,
    ):
        if users < 1:
            raise ValueError(f"users must be at least 1, got {users}")
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        self._rng = random.Random(seed)
        self._rate = rate
        self._start = start
        self._duplicate_rate = duplicate_rate
        self._legacy_share = legacy_share
        self._planned = 0  # events planned so far; the next activity starts at start + planned / rate
        self._agenda: list[tuple[float, int, Callable[[float, Outbox], None]]] = []
        self._tie_breaker = itertools.count()
        self._workflows: dict[str, list[_Workflow]] = {self._new_id(): [] for _ in range(users)}
        self.counts: Counter[str] = Counter()  # events produced per topic, and "duplicates"
        self._running_jobs = 0
        self._schedule(start + METRIC_INTERVAL, self._report_running_jobs)

    def advance(self, until: float) -> list[AnyEvent]:
        """Everything that happens up to `until` (seconds since the epoch), in time order."""
        out: Outbox = []
        while True:
            next_activity = self._start + self._planned / self._rate
            next_step = self._agenda[0][0] if self._agenda else math.inf
            if min(next_activity, next_step) > until:
                return out
            if next_step <= next_activity:
                at, _, step = heapq.heappop(self._agenda)
                step(at, out)
            else:
                self._new_activity(next_activity, out)

    # -- workflows ---------------------------------------------------------------------------
    def _new_activity(self, at: float, out: Outbox) -> None:
        """One thing a user does: mostly run a job; sometimes create, update or delete a workflow."""
        user_id = self._rng.choice(list(self._workflows))
        active = [w for w in self._workflows[user_id] if w.state == "active"]
        roll = self._rng.random()
        if not active or (roll < 0.06 and len(active) < MAX_ACTIVE_WORKFLOWS_PER_USER):
            self._create_workflow(user_id, at, out)
            self._planned += 1
        elif 0.06 <= roll < 0.07:
            self._workflow_event(self._rng.choice(active), "updated", at, out)
            self._planned += 1
        elif 0.07 <= roll < 0.075:
            workflow = self._rng.choice(active)
            workflow.state = "deleted"
            self._workflow_event(workflow, "deleted", at, out)
            self._planned += 1
        else:
            self._planned += max(1, self._start_job(self._rng.choice(active), at, out))

    def _create_workflow(self, user_id: str, at: float, out: Outbox) -> None:
        flaky = self._rng.random() < 0.15
        workflow = _Workflow(
            user_id=user_id,
            workflow_id=self._new_id(),
            kind=self._rng.choice(KINDS),
            legacy=self._rng.random() < self._legacy_share,
            failure_rate=0.5 if flaky else 0.08,
        )
        self._workflows[user_id].append(workflow)
        self._workflow_event(workflow, "created", at, out)

    def _workflow_event(self, workflow: _Workflow, name: str, at: float, out: Outbox) -> None:
        if workflow.legacy:
            if name == "created":  # the compatibility topic counts workflows, nothing else about them
                self._compat(workflow, "WORKFLOWS", {"kind": workflow.kind}, at, out)
            return
        attributes = {"user_id": workflow.user_id, "workflow_id": workflow.workflow_id, "kind": workflow.kind}
        self._emit(Event("workflow", name, attributes, event_id=self._new_id(), event_time=_moment(at)), at, out)

    # -- jobs --------------------------------------------------------------------------------
    def _start_job(self, workflow: _Workflow, at: float, out: Outbox) -> int:
        """Create a job and plan its life; returns how many events it is expected to produce."""
        rng = self._rng
        heartbeat = workflow.kind == "HEARTBEAT"
        job = _Job(workflow, self._new_id(), scheduled_at=at + rng.uniform(0.0, 1.0))
        started = job.scheduled_at + rng.lognormvariate(math.log(0.2), 0.5)  # waiting for a worker
        run = min(120.0, max(0.05, rng.lognormvariate(math.log(1.0 if heartbeat else 8.0), 0.8)))
        roll = rng.random()
        outcome = (
            "running"  # never finishes (still running when the demo ends, or stuck)
            if roll < 0.02
            else "cancelled"
            if roll < 0.05
            else "failed"
            if roll < 0.05 + workflow.failure_rate
            else "completed"
        )
        if outcome == "cancelled" and rng.random() < 0.5:
            job.steps.append((rng.uniform(job.scheduled_at, started), "cancelled", 0))  # before it started
        else:
            ended = started + (run if outcome == "completed" else max(0.01, run * rng.uniform(0.1, 0.9)))
            job.steps.append((started, "started", 0))
            for _ in range(rng.randint(0, 1) if heartbeat else rng.randint(1, 5)):
                single_line = rng.random() < 0.3
                count = 1 if single_line else max(1, int(rng.lognormvariate(math.log(3 if heartbeat else 40), 1.0)))
                job.steps.append((rng.uniform(started, ended), "log", count))
            if outcome != "running":
                job.steps.append((ended, outcome, 0))
        job.steps.sort()
        self._job_event(job, "created", at, out)
        self._schedule(job.steps[0][0], partial(self._job_step, job))
        if workflow.legacy:
            return sum(1 for _, what, _ in job.steps if what != "started")
        return 1 + len(job.steps)

    def _job_step(self, job: _Job, at: float, out: Outbox) -> None:
        _, what, count = job.steps.pop(0)
        if job.status == "pending" and job.workflow.state != "active":
            what = "cancelled"  # its workflow was terminated or deleted before the job started
            job.steps.clear()
        if what == "log":
            self._log_event(job, count, at, out)
        elif what == "started":
            job.status, job.started_at = "running", at
            self._running_jobs += 1
            self._job_event(job, "started", at, out)
        else:
            if job.status == "running":
                self._running_jobs -= 1
            job.status, job.completed_at = what, at
            self._job_event(job, what, at, out)
            self._count_failure(job, at, out)
        if job.steps:
            self._schedule(job.steps[0][0], partial(self._job_step, job))

    def _count_failure(self, job: _Job, at: float, out: Outbox) -> None:
        workflow = job.workflow
        if job.status == "completed":
            workflow.failures_in_a_row = 0
        elif job.status == "failed":
            workflow.failures_in_a_row += 1
            if workflow.failures_in_a_row >= FAILURES_BEFORE_TERMINATION and workflow.state == "active":
                workflow.state = "terminated"
                self._workflow_event(workflow, "terminated", at, out)

    def _job_event(self, job: _Job, name: str, at: float, out: Outbox) -> None:
        workflow = job.workflow
        if workflow.legacy:
            if name in ("completed", "failed", "cancelled"):
                ran = job.completed_at - job.started_at if job.started_at is not None else 0.0
                duration = int(ran) if name != "cancelled" else 0
                self._compat(workflow, "JOBS", {"job_execution_duration": duration}, at, out)
            return
        attributes = {
            "user_id": workflow.user_id,
            "workflow_id": workflow.workflow_id,
            "job_id": job.job_id,
            "status": job.status,
            "scheduled_at": _timestamp(job.scheduled_at),
            "started_at": _timestamp(job.started_at),
            "completed_at": _timestamp(job.completed_at),
        }
        self._emit(Event("job", name, attributes, event_id=self._new_id(), event_time=_moment(at)), at, out)

    def _log_event(self, job: _Job, count: int, at: float, out: Outbox) -> None:
        workflow = job.workflow
        sequence = job.log_sequence
        job.log_sequence += count
        if workflow.legacy:
            self._compat(workflow, "LOGS", {"count": count}, at, out)
            return
        attributes = {"user_id": workflow.user_id, "workflow_id": workflow.workflow_id, "job_id": job.job_id}
        attributes["count"] = count
        if count == 1:
            attributes["stream"] = "stderr" if self._rng.random() < 0.2 else "stdout"
            attributes["sequence"] = sequence
            attributes["message"] = self._rng.choice(_LOG_LINES[workflow.kind])
        self._emit(Event("job_log", "created", attributes, event_id=self._new_id(), event_time=_moment(at)), at, out)

    def _report_running_jobs(self, at: float, out: Outbox) -> None:
        attributes = {"service_name": "scheduler", "value": self._running_jobs}
        self._emit(
            Event("metric", "jobs_running", attributes, event_id=self._new_id(), event_time=_moment(at)), at, out
        )
        self._schedule(at + METRIC_INTERVAL, self._report_running_jobs)

    # -- output ------------------------------------------------------------------------------
    def _compat(self, workflow: _Workflow, kind: str, data: dict, at: float, out: Outbox) -> None:
        event = AnalyticsCompatEvent(kind, workflow.user_id, workflow.workflow_id, data, event_key=self._new_id())
        self._emit(event, at, out)

    def _emit(self, event: AnyEvent, at: float, out: Outbox) -> None:
        out.append(event)
        self.counts[event.topic] += 1
        if self._rng.random() < self._duplicate_rate:
            # Delivered again a little later, as a producer retry or a consumer replay would.
            self._schedule(at + self._rng.uniform(0.2, 3.0), partial(self._redeliver, event))

    def _redeliver(self, event: AnyEvent, at: float, out: Outbox) -> None:
        out.append(event)
        self.counts[event.topic] += 1
        self.counts["duplicates"] += 1

    def _schedule(self, at: float, step: Callable[[float, Outbox], None]) -> None:
        heapq.heappush(self._agenda, (at, next(self._tie_breaker), step))

    def _new_id(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))


def _moment(at: float) -> datetime:
    return datetime.fromtimestamp(at, UTC)


def _timestamp(at: float | None) -> str | None:
    return None if at is None else format_time(_moment(at))


def run_demo(
    client: Client,
    *,
    rate: float,
    users: int,
    duration: float | None = None,
    seed: int | None = None,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], object] = time.sleep,
    tick: float = 0.1,
    report: Callable[[Counter[str], ClientStats], None] | None = None,
    report_every: float = 5.0,
    should_stop: Callable[[], bool] = lambda: False,
) -> Counter[str]:
    """Send the generated stream through `client` in real time (per `clock`) for `duration` seconds,
    or until Ctrl-C or `should_stop()`; `report` is called every `report_every` seconds. Returns the counts."""
    start = clock()
    generator = DemoGenerator(users=users, rate=rate, start=start, seed=seed)
    end = math.inf if duration is None else start + duration
    next_report = start + report_every
    try:
        while True:
            now = clock()
            for event in generator.advance(min(now, end)):
                client.send(event)
            if now >= end or should_stop():
                break
            if report is not None and now >= next_report:
                report(generator.counts, client.stats)
                next_report += report_every
            sleep(tick)
    except KeyboardInterrupt:
        pass  # Ctrl-C is how an open-ended demo ends
    return generator.counts


def demo_sink(
    kind: str,
    *,
    kafka_bootstrap: str | None,
    clickhouse_url: str,
    clickhouse_user: str = "default",
    clickhouse_password: str = "",
) -> tuple[Sink, str]:
    """The sink `analytics demo` sends to, and where that is in words. Undeliverable demo events
    are only counted: the sink logs why."""

    def count_only(events: list[AnyEvent], error: DeliveryError) -> None:
        pass

    if kind == "kafka":
        if not kafka_bootstrap:
            raise ValueError("the kafka sink needs ANALYTICS_KAFKA_BOOTSTRAP (host:port of a broker)")
        return KafkaSink(kafka_bootstrap, on_error=count_only), f"Kafka at {kafka_bootstrap}"
    if kind == "clickhouse":
        sink = ClickHouseSink(clickhouse_url, user=clickhouse_user, password=clickhouse_password, on_error=count_only)
        return sink, f"ClickHouse at {clickhouse_url}"
    if kind == "logger":
        return LoggerSink(), "the log"
    raise ValueError(f"unknown sink {kind!r}; choose clickhouse, kafka or logger")


def summary(
    counts: Counter[str], stats: ClientStats, delivery: DeliveryStats | None = None, closed: bool = False
) -> str:
    """One line for people: what was generated, what reached the sink, what the sink delivered;
    once the client is `closed`, also what it left behind (not handed over, or still with the sink)."""
    by_topic = ", ".join(f"{topic} {n}" for topic, n in sorted(counts.items()) if topic != "duplicates")
    total = sum(n for topic, n in counts.items() if topic != "duplicates")
    line = f"generated {total} events ({by_topic or 'none yet'}; {counts['duplicates']} duplicates)"
    line += f"; handed to the sink {stats.emitted}, dropped {stats.dropped}"
    if stats.failed:
        line += f", lost as the sink took them {stats.failed}"
    if closed and stats.pending:
        line += f", left undelivered at close {stats.pending}"
    if delivery is not None:
        line += f"; delivered {delivery.delivered}, rejected {delivery.rejected}, failed {delivery.failed}"
    return line


def delivery(sink: Sink) -> DeliveryStats | None:
    """A network sink's delivery counts as they are now; None for a sink without (the logger)."""
    return getattr(sink, "stats", None)


def undelivered(stats: ClientStats, delivery: DeliveryStats | None) -> int:
    """Once the client is closed: the events generated that are not known to have been delivered
    (dropped, lost or left behind by the client; rejected or failed by the sink)."""
    lost = stats.dropped + stats.failed + stats.pending
    if delivery is not None:
        lost += delivery.rejected + delivery.failed
    return lost
