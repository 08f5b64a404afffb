"""Generated job logs with the lines each job should list, computed here in Python.

The messages are what producers put on the `jobs` and `job_logs` topics: lines sent out of
order, some twice (in the same batch and in later ones), count-only events among them, in
several streams (and none), with words in several scripts and characters LIKE treats specially.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from dataclasses import dataclass, field

from tests.datasets import iso

WORDS = (
    "starting", "worker", "connected", "to", "database", "request", "served", "in", "ms", "GET", "POST",
    "retry", "cache", "miss", "Über", "größe", "ОШИБКА", "соединения", "日本語のログ", "naïve", "café",
    "100%", "done_x", "back\\slash", "quote's", "ΔΈΛΤΑ", "tab\there", "ΠΡΟΣΟΧΗ", "ΟΔΟΣ",
)  # fmt: skip
# Each job has one line with a word that no other line of the data set has.
RARE = "zyxwvut"


@dataclass(frozen=True)
class Line:
    event_id: str
    time: dt.datetime
    stream: str
    sequence: int  # 0 when the producer sent none
    message: str

    @property
    def timestamp(self) -> str:
        return iso(self.time)


@dataclass
class JobLog:
    user_id: str
    workflow_id: str
    job_id: str
    lines: list[Line] = field(default_factory=list)  # in the order ListJobLogs returns them
    entries: int = 0  # the sum of count over every log event, lines and count-only ones

    @property
    def ids(self) -> dict[str, str]:
        return {"user_id": self.user_id, "workflow_id": self.workflow_id, "job_id": self.job_id}


@dataclass
class LogSet:
    messages: dict[str, list[dict]]  # topic -> messages in delivery order, duplicates included
    jobs: list[JobLog]
    prefix: str


def job_event(job: JobLog, name: str, moment: dt.datetime, event_id: str) -> dict:
    status = {"created": "PENDING", "started": "RUNNING"}.get(name, name.upper())
    times = {"started_at": None, "completed_at": None}
    if name in ("completed", "failed"):
        times = {"started_at": iso(moment - dt.timedelta(minutes=5)), "completed_at": iso(moment)}
    return {
        "event_id": event_id,
        "event_time": iso(moment),
        "event_type": "job",
        "event_name": name,
        "status": status,
        **times,
        **job.ids,
    }


def log_event(job: JobLog, event_id: str, moment: dt.datetime, **line) -> dict:
    return {
        "event_id": event_id,
        "event_time": iso(moment),
        "event_type": "job_log",
        "event_name": "created",
        "count": line.pop("count", 1),
        **job.ids,
        **line,
    }


def generate_logs(
    seed: int,
    users: int = 2,
    jobs_per_user: int = 3,
    lines: tuple[int, int] = (30, 300),
    hours_ago: int = 30,
    duplicate_rate: float = 0.2,
) -> LogSet:
    """Jobs whose lines were logged over the last ``hours_ago`` hours (inside the default retention).

    The last job of each user numbers no line (its lines read in time order); every other job
    numbers them, and sends them out of order.
    """
    rng = random.Random(seed)
    prefix = f"log{seed}-{uuid.uuid4().hex[:6]}"
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=hours_ago)
    unique: dict[str, list[dict]] = {"jobs": [], "job_logs": []}
    jobs: list[JobLog] = []

    def new_id() -> str:
        return f"{prefix}-{uuid.UUID(int=rng.getrandbits(128))}"

    for u in range(users):
        for j in range(jobs_per_user):
            job = JobLog(f"{prefix}-user-{u}", f"{prefix}-wf-{u}", f"{prefix}-job-{u}-{j}")
            numbered = j != jobs_per_user - 1
            began = start + dt.timedelta(minutes=rng.randrange(60 * hours_ago // 2))
            unique["jobs"].append(job_event(job, "created", began, new_id()))
            count = rng.randrange(*lines)
            rare_at = rng.randrange(count)
            moment = began
            for n in range(count):
                moment += dt.timedelta(milliseconds=rng.randrange(1, 2000))
                text = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(1, 8)))
                if n == rare_at:
                    text += f" the {RARE.upper()} exploded"
                stream = rng.choice(["stdout", "stdout", "stderr", ""])
                line = Line(new_id(), moment, stream, n if numbered else 0, f"{n}: {text}")
                job.lines.append(line)
                job.entries += 1
                attributes = {"message": line.message}
                if stream:
                    attributes["stream"] = stream
                if numbered:
                    attributes["sequence"] = n
                unique["job_logs"].append(log_event(job, line.event_id, moment, **attributes))
                if rng.random() < 0.05:  # a count-only event now and then: no line
                    entries = rng.randrange(1, 50)
                    job.entries += entries
                    unique["job_logs"].append(log_event(job, new_id(), moment, count=entries))
            jobs.append(job)

    messages = {}
    for topic, events in unique.items():
        delivered = list(events)
        delivered += [dict(m) for m in rng.sample(events, int(len(events) * duplicate_rate))]
        rng.shuffle(delivered)  # out of order, duplicates anywhere
        messages[topic] = delivered
    return LogSet(messages, jobs, prefix)
