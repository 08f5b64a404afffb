"""Generated event sets with the numbers DESIGN.md's metrics give for them, computed here in Python.

The messages are what producers put on the topics, in an order that includes duplicates
(re-sent in the same batch and in later ones) and events arriving before the ones they follow.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections import defaultdict
from dataclasses import dataclass, field

KINDS = ("HEARTBEAT", "CONTAINER")


def iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass
class Expected:
    workflows: set = field(default_factory=set)
    jobs: dict = field(default_factory=lambda: defaultdict(int))  # (user, workflow) -> jobs
    joblogs: dict = field(default_factory=lambda: defaultdict(int))
    seconds: dict = field(default_factory=lambda: defaultdict(int))
    outcomes: dict = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    kinds: dict = field(default_factory=dict)
    daily_jobs: dict = field(default_factory=lambda: defaultdict(int))  # (user, workflow, date) -> jobs

    def workflow(self, user: str, workflow: str) -> tuple[int, int, int]:
        """(total_jobs, total_joblogs, total_job_execution_duration)"""
        key = (user, workflow)
        return self.jobs[key], self.joblogs[key], self.seconds[key]

    def user(self, user: str) -> tuple[int, int, int, int]:
        """(total_workflows, total_jobs, total_joblogs, total_job_execution_duration)"""
        keys = [key for key in self.workflows if key[0] == user]
        return (
            len(keys),
            sum(self.jobs[key] for key in keys),
            sum(self.joblogs[key] for key in keys),
            sum(self.seconds[key] for key in keys),
        )

    @property
    def users(self) -> list[str]:
        return sorted({user for user, _ in self.workflows})


@dataclass
class Dataset:
    messages: dict[str, list[dict]]  # topic -> messages in delivery order, duplicates included
    expected: Expected
    prefix: str


def generate(
    seed: int,
    users: int = 6,
    workflows_per_user: int = 4,
    jobs_per_workflow: int = 6,
    duplicate_rate: float = 0.2,
    days_ago: int = 25,
    span_days: int = 20,
) -> Dataset:
    """Events over `span_days` days starting `days_ago` days ago (inside the default log retention)."""
    rng = random.Random(seed)
    epoch = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0) - dt.timedelta(days=days_ago)
    prefix = f"s{seed}-{uuid.uuid4().hex[:6]}"
    expected = Expected()
    unique: dict[str, list[dict]] = defaultdict(list)

    def event(topic: str, event_type: str, name: str, moment: dt.datetime, **attrs) -> dict:
        message = {
            # Ids carry the data set's unique prefix: two sets from one seed must not share events.
            "event_id": f"{prefix}-{uuid.UUID(int=rng.getrandbits(128))}",
            "event_time": iso(moment),
            "event_type": event_type,
            "event_name": name,
            **attrs,
        }
        unique[topic].append(message)
        return message

    for u in range(users):
        user = f"{prefix}-user-{u}"
        for w in range(workflows_per_user):
            workflow = f"{prefix}-wf-{u}-{w}"
            kind = rng.choice(KINDS)
            key = (user, workflow)
            start = epoch + dt.timedelta(days=rng.randrange(span_days), seconds=rng.randrange(86_400))
            expected.workflows.add(key)
            expected.kinds[key] = kind
            ids = {"user_id": user, "workflow_id": workflow}
            event("workflows", "workflow", "created", start, kind=kind, **ids)
            if rng.random() < 0.3:
                event("workflows", "workflow", "updated", start + dt.timedelta(hours=1), kind=kind, **ids)
            ending = rng.random()
            if ending < 0.2:
                event("workflows", "workflow", "terminated", start + dt.timedelta(days=2), kind=kind, **ids)
            elif ending < 0.35:
                event("workflows", "workflow", "deleted", start + dt.timedelta(days=3), kind=kind, **ids)
            for j in range(rng.randrange(1, jobs_per_workflow + 1)):
                job = f"{workflow}-job-{j}"
                created = start + dt.timedelta(minutes=5 + j * 7, milliseconds=rng.randrange(1000))
                started = created + dt.timedelta(seconds=rng.randrange(1, 60), milliseconds=rng.randrange(1000))
                ended = started + dt.timedelta(seconds=rng.randrange(1, 3600), milliseconds=rng.randrange(1000))
                job_ids = {**ids, "job_id": job}
                fate = rng.choice(["pending", "running", "completed", "completed", "failed", "cancelled"])
                expected.jobs[key] += 1
                expected.daily_jobs[(user, workflow, created.date())] += 1
                event(
                    "jobs",
                    "job",
                    "created",
                    created,
                    status="PENDING",
                    scheduled_at=iso(created),
                    started_at=None,
                    completed_at=None,
                    **job_ids,
                )
                if fate != "pending":
                    event(
                        "jobs",
                        "job",
                        "started",
                        started,
                        status="RUNNING",
                        scheduled_at=iso(created),
                        started_at=iso(started),
                        completed_at=None,
                        **job_ids,
                    )
                if fate in ("completed", "failed"):
                    event(
                        "jobs",
                        "job",
                        fate,
                        ended,
                        status=fate.upper(),
                        scheduled_at=iso(created),
                        started_at=iso(started),
                        completed_at=iso(ended),
                        **job_ids,
                    )
                    milliseconds = (ended - started) // dt.timedelta(milliseconds=1)
                    expected.seconds[key] += milliseconds // 1000
                    expected.outcomes[key][fate] += 1
                elif fate == "cancelled":
                    event(
                        "jobs",
                        "job",
                        "cancelled",
                        ended,
                        status="CANCELLED",
                        scheduled_at=iso(created),
                        started_at=None,
                        completed_at=None,
                        **job_ids,
                    )
                    expected.outcomes[key]["cancelled"] += 1
                if fate != "pending":
                    for burst in range(rng.randrange(0, 4)):
                        count = rng.choice([1, 1, 3, 10, 250])
                        expected.joblogs[key] += count
                        event(
                            "job_logs",
                            "job_log",
                            "created",
                            started + dt.timedelta(seconds=burst),
                            count=count,
                            stream="stdout",
                            sequence=burst,
                            **job_ids,
                        )
        # The scheduler's legacy pre-aggregated events for one more workflow of this user.
        legacy_workflow = f"{prefix}-legacy-{u}"
        legacy_key = (user, legacy_workflow)
        expected.workflows.add(legacy_key)
        expected.kinds[legacy_key] = "CONTAINER"
        unique["analytics"].append(
            {
                "EventKey": f"{legacy_workflow}-wf",
                "UserID": user,
                "WorkflowID": legacy_workflow,
                "EventType": "WORKFLOWS",
                "Data": {"kind": "CONTAINER"},
            }
        )
        for n in range(rng.randrange(1, 4)):
            duration = rng.randrange(1, 5000) / 10
            expected.jobs[legacy_key] += 1
            expected.seconds[legacy_key] += int(duration)
            unique["analytics"].append(
                {
                    "EventKey": f"{legacy_workflow}-job-{n}",
                    "UserID": user,
                    "WorkflowID": legacy_workflow,
                    "EventType": "JOBS",
                    "Data": {"job_execution_duration": duration},
                }
            )
        logs = rng.randrange(1, 100)
        expected.joblogs[legacy_key] += logs
        unique["analytics"].append(
            {
                "EventKey": f"{legacy_workflow}-logs",
                "UserID": user,
                "WorkflowID": legacy_workflow,
                "EventType": "LOGS",
                "Data": {"count": logs},
            }
        )

    messages = {}
    for topic, events in unique.items():
        delivered = list(events)
        delivered += [dict(m) for m in rng.sample(events, int(len(events) * duplicate_rate))]
        rng.shuffle(delivered)  # duplicates anywhere, completions before creations
        messages[topic] = delivered
    return Dataset(messages, expected, prefix)


# The same instants as other producers may write them, and the spellings the contract also takes.
OFFSETS = [dt.timedelta(hours=5, minutes=30), dt.timedelta(hours=-8), dt.timedelta(hours=14), dt.timedelta(hours=-12)]
STATUS_SPELLINGS = {
    "PENDING": ["pending", "PENDING", "queued", "QUEUED"],
    "RUNNING": ["running", "RUNNING"],
    "COMPLETED": ["completed", "COMPLETED"],
    "FAILED": ["failed", "FAILED"],
    "CANCELLED": ["CANCELLED", "cancelled", "CANCELED", "canceled"],
}


def written_otherwise(text: str, rng: random.Random) -> str:
    """The same millisecond in another offset (or Z), with or without digits past it."""
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    offset = rng.choice([dt.timedelta(0), *OFFSETS])
    local = moment.astimezone(dt.timezone(offset))
    written = (
        local.strftime("%Y-%m-%dT%H:%M:%S.") + f"{local.microsecond // 1000:03d}" + rng.choice(["", "000", "999999"])
    )
    if not offset:
        return written + "Z"
    minutes = int(offset.total_seconds()) // 60
    return written + f"{'+' if minutes > 0 else '-'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def odd_but_valid(dataset: Dataset, seed: int) -> Dataset:
    """The data set's events as other producers may write them: times in other offsets, some with
    digits past the millisecond (kept to the millisecond, they are the same times), statuses in
    either spelling, a count of 1 as null or left out. A duplicate stays the same bytes as its
    event. The metrics are the same, so ``dataset.expected`` still holds."""
    rng = random.Random(seed)
    rewritten: dict[str, dict] = {}
    messages = {}
    for topic, batch in dataset.messages.items():
        messages[topic] = []
        for message in batch:
            event_id = message.get("event_id")
            if event_id is None:  # the scheduler's events: as they are
                messages[topic].append(message)
                continue
            if event_id not in rewritten:
                event = dict(message)
                for field in ("event_time", "scheduled_at", "started_at", "completed_at"):
                    if isinstance(event.get(field), str):
                        event[field] = written_otherwise(event[field], rng)
                if "status" in event:
                    event["status"] = rng.choice(STATUS_SPELLINGS[event["status"]])
                if event.get("count") == 1:
                    spelling = rng.choice(["as it is", "null", "left out"])
                    if spelling == "null":
                        event["count"] = None
                    elif spelling == "left out":
                        del event["count"]
                rewritten[event_id] = event
            messages[topic].append(dict(rewritten[event_id]))
    return Dataset(messages, dataset.expected, dataset.prefix)
