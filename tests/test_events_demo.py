"""The demo generator: a stream a data engineer would believe, repeatable from a seed; and the command."""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from analytics.cli import main
from events import AnalyticsCompatEvent, Batching, Client, Event, MemorySink
from events.contract import validate_message
from events.demo import KINDS, DemoGenerator, demo_sink, run_demo
from tests.events_support import START, FakeClock

DURATION = 300.0
RATE = 100.0


@pytest.fixture(scope="module")
def stream():
    generator = DemoGenerator(users=15, rate=RATE, start=START, seed=42, legacy_share=0.2)
    return generator.advance(START + DURATION), generator.counts


def seconds(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp).timestamp()


def unique(events):
    seen, out = set(), []
    for event in events:
        if event.event_id not in seen:
            seen.add(event.event_id)
            out.append(event)
    return out


def of_type(events, event_type):
    return [e for e in unique(events) if isinstance(e, Event) and e.event_type == event_type]


def test_every_event_meets_the_contract(stream):
    events, _ = stream
    for event in events:
        validate_message(event.to_dict())


def test_first_deliveries_come_in_time_order_within_the_run(stream):
    events, _ = stream
    times = [e.event_time.timestamp() for e in unique(events) if isinstance(e, Event)]
    assert times == sorted(times)  # redeliveries come later, with their original time
    assert times[0] >= START and times[-1] <= START + DURATION


def test_the_rate_is_about_what_was_asked(stream):
    events, counts = stream
    produced = len(unique(events))  # counted from the stream itself, redeliveries once
    assert 0.75 * RATE * DURATION <= produced <= 1.1 * RATE * DURATION
    # The generator's own counts (what `analytics demo` reports) agree with the stream.
    by_topic = Counter(event.topic for event in events)
    assert {topic: n for topic, n in counts.items() if topic != "duplicates"} == by_topic
    assert counts["duplicates"] == len(events) - produced


def test_each_job_moves_through_its_states_in_order(stream):
    events, _ = stream
    lifecycles = defaultdict(list)
    for event in of_type(events, "job"):
        lifecycles[event.attributes["job_id"]].append(event.event_name)
    # created, then cancelled before starting, or started and then at most one end.
    path = re.compile(r"created(,cancelled|,started(,(completed|failed|cancelled))?)?")
    assert all(path.fullmatch(",".join(names)) for names in lifecycles.values())
    endings = Counter(names[-1] for names in lifecycles.values())
    assert endings["completed"] > endings["failed"] > endings["cancelled"] > 0
    assert endings["started"] > 0  # jobs still running at the end


def test_job_timestamps_are_consistent_and_durations_positive(stream):
    events, _ = stream
    finished = 0
    for event in of_type(events, "job"):
        attributes, at = event.attributes, event.event_time.timestamp()
        scheduled = seconds(attributes["scheduled_at"])
        if event.event_name == "created":
            assert at <= scheduled <= at + 1.0
        if attributes["started_at"] is not None:
            assert seconds(attributes["started_at"]) >= scheduled
        if event.event_name == "started":
            assert seconds(attributes["started_at"]) == at
        if event.event_name in ("completed", "failed"):
            assert seconds(attributes["completed_at"]) > seconds(attributes["started_at"])
            assert seconds(attributes["completed_at"]) == at
            finished += 1
    assert finished > 100


def test_heartbeat_jobs_are_shorter_than_container_jobs(stream):
    events, _ = stream
    kind_of = {e.attributes["workflow_id"]: e.attributes["kind"] for e in of_type(events, "workflow")}
    durations = defaultdict(list)
    for event in of_type(events, "job"):
        if event.event_name == "completed":
            a = event.attributes
            durations[kind_of[a["workflow_id"]]].append(seconds(a["completed_at"]) - seconds(a["started_at"]))
    median = {kind: sorted(values)[len(values) // 2] for kind, values in durations.items()}
    assert set(median) == set(KINDS)
    assert median["HEARTBEAT"] < median["CONTAINER"]


def test_workflows_are_created_before_their_jobs_and_take_none_once_ended(stream):
    events, _ = stream
    state = {}  # workflow_id -> its latest workflow event
    owner = {}
    for event in unique(events):
        if not isinstance(event, Event) or event.event_type == "metric":
            continue
        a = event.attributes
        if event.event_type == "workflow":
            assert (event.event_name == "created") == (a["workflow_id"] not in state)
            assert state.get(a["workflow_id"]) not in ("terminated", "deleted")  # nothing follows the end
            state[a["workflow_id"]] = event.event_name
            owner[a["workflow_id"]] = a["user_id"]
        else:
            assert event.event_type in ("job", "job_log")
            assert a["workflow_id"] in state and owner[a["workflow_id"]] == a["user_id"]
            if event.event_type == "job" and event.event_name in ("created", "started"):
                # no new jobs once a workflow ended, and the pending ones are cancelled, not started
                assert state[a["workflow_id"]] in ("created", "updated")
    names = Counter(e.event_name for e in of_type(events, "workflow"))
    assert all(names[name] > 0 for name in ("created", "updated", "terminated", "deleted"))


def test_logs_come_in_bursts_while_their_job_runs(stream):
    events, _ = stream
    running = {}  # job_id -> (started, ended or None)
    for event in of_type(events, "job"):
        a = event.attributes
        running[a["job_id"]] = (a["started_at"], a["completed_at"])
    logs = of_type(events, "job_log")
    for event in logs:
        a = event.attributes
        started, ended = running[a["job_id"]]
        assert started is not None and seconds(started) <= event.event_time.timestamp()
        assert ended is None or event.event_time.timestamp() <= seconds(ended)
        assert a["count"] >= 1
        assert ("message" in a) == (a["count"] == 1) and ("stream" in a) == (a["count"] == 1)
    assert max(e.attributes["count"] for e in logs) > 50


def test_the_running_jobs_metric_matches_the_job_events():
    # Without compatibility workflows, whose job starts are not events, the stream shows every job.
    events = DemoGenerator(users=15, rate=RATE, start=START, seed=42, legacy_share=0.0).advance(START + DURATION)
    running, reports = set(), []
    for event in unique(events):
        if isinstance(event, Event) and event.event_type == "job":
            (running.add if event.event_name == "started" else running.discard)(event.attributes["job_id"])
        elif isinstance(event, Event) and event.event_type == "metric":
            assert (event.event_name, event.attributes["service_name"]) == ("jobs_running", "scheduler")
            reports.append((event.attributes["value"], len(running)))
    assert len(reports) == DURATION // 5
    assert all(value == expected for value, expected in reports)
    assert max(value for value, _ in reports) > 0


def test_compatibility_events_cover_their_own_workflows_with_plausible_values(stream):
    events, _ = stream
    compat = [e for e in unique(events) if isinstance(e, AnalyticsCompatEvent)]
    by_type = defaultdict(list)
    for event in compat:
        by_type[event.event_type].append(event.data)
    assert set(by_type) == {"WORKFLOWS", "JOBS", "LOGS"}
    assert all(data["kind"] in KINDS for data in by_type["WORKFLOWS"])
    assert all(
        isinstance(d["job_execution_duration"], int) and d["job_execution_duration"] >= 0 for d in by_type["JOBS"]
    )
    assert all(data["count"] >= 1 for data in by_type["LOGS"])
    enveloped = {e.attributes.get("workflow_id") for e in unique(events) if isinstance(e, Event)}
    assert not enveloped & {e.workflow_id for e in compat}  # a workflow reports one way only


def test_duplicates_are_the_same_event_delivered_again(stream):
    events, counts = stream
    by_id = defaultdict(list)
    for event in events:
        by_id[event.event_id].append(event)
    repeated = {event_id: copies for event_id, copies in by_id.items() if len(copies) > 1}
    assert len(repeated) > 10
    assert sum(len(copies) - 1 for copies in repeated.values()) == counts["duplicates"]
    for copies in repeated.values():
        assert len({copy.json for copy in copies}) == 1  # same id, same time, same payload


def test_the_same_seed_gives_the_same_stream_and_another_seed_another():
    def first_events(seed):
        return [e.json for e in DemoGenerator(users=5, rate=50, start=START, seed=seed).advance(START + 20)]

    assert first_events(1) == first_events(1)
    assert first_events(1) != first_events(2)


def test_run_demo_sends_the_stream_through_a_client_in_clock_time():
    clock = FakeClock()
    sink = MemorySink(Batching(max_events=500, interval=1.0))
    client = Client(sink, clock=clock, queue_size=100_000, background=False)
    reports = []

    counts = run_demo(
        client,
        rate=40,
        users=4,
        duration=60,
        seed=3,
        clock=clock,
        sleep=clock.advance,
        tick=0.5,
        report=lambda counts, stats: reports.append(stats.accepted),
        report_every=10.0,
    )
    client.close()

    # What reached the sink is the seed's stream over those 60 seconds, event for event, in order.
    expected = DemoGenerator(users=4, rate=40, start=START, seed=3).advance(START + 60)
    assert [event.json for event in sink.events] == [event.json for event in expected]
    assert client.stats.accepted == len(sink.events) > 1000
    assert sum(n for topic, n in counts.items() if topic != "duplicates") == len(expected)
    assert all(START <= e.event_time.timestamp() <= START + 60 for e in sink.events if isinstance(e, Event))
    assert len(reports) == 5 and reports == sorted(reports)


def test_the_demo_command_runs_with_the_logger_sink():
    result = CliRunner().invoke(
        main, ["demo", "--sink", "logger", "--duration", "0.5", "--rate", "50", "--users", "2", "--seed", "3"]
    )
    assert result.exit_code == 0, result.output
    assert re.search(r"generated [1-9]\d* events", result.output)


def test_the_demo_command_explains_what_the_kafka_sink_needs(monkeypatch):
    monkeypatch.delenv("ANALYTICS_KAFKA_BOOTSTRAP", raising=False)
    result = CliRunner().invoke(main, ["demo", "--sink", "kafka", "--duration", "1"])
    assert result.exit_code == 2
    assert "ANALYTICS_KAFKA_BOOTSTRAP" in result.output


@pytest.mark.parametrize("rate", ["0", "-5", "inf", "nan"])
def test_the_demo_command_refuses_a_rate_that_is_not_a_positive_number(rate):
    # An endless rate would spin without sleeping: refused before anything starts.
    result = CliRunner().invoke(main, ["demo", "--sink", "logger", "--rate", rate, "--duration", "1"])
    assert result.exit_code == 2 and "invalid settings: --rate (ANALYTICS_DEMO_RATE)" in result.output, result.output


@pytest.mark.parametrize("duration", ["0", "-1"])
def test_the_demo_command_refuses_a_duration_that_is_not_positive(duration):
    result = CliRunner().invoke(main, ["demo", "--sink", "logger", "--duration", duration])
    assert result.exit_code == 2 and "Invalid value for '--duration'" in result.output, result.output


def test_the_demo_command_fails_when_clickhouse_rejects_the_events(clickhouse):
    env = {"ANALYTICS_CLICKHOUSE_URL": clickhouse.url, "ANALYTICS_CLICKHOUSE_PASSWORD": "wrong"}
    result = CliRunner(env=env).invoke(main, ["demo", "--sink", "clickhouse", "--duration", "0.5", "--seed", "1"])
    assert result.exit_code == 1, result.output
    assert re.search(r"rejected [1-9]\d*", result.output) and "were not delivered" in result.output


def test_the_demo_command_fails_when_events_are_left_behind_at_close(silent_port):
    """A ClickHouse that never answers: close() gives up on what it still holds, and the command
    said "failed 0" and exited 0, as if all had been delivered."""
    env = {"ANALYTICS_CLICKHOUSE_URL": f"http://127.0.0.1:{silent_port}"}
    result = CliRunner(env=env).invoke(
        main, ["demo", "--sink", "clickhouse", "--duration", "2", "--rate", "100", "--seed", "1"]
    )
    assert result.exit_code == 1, result.output
    final = result.output.splitlines()[-2]
    generated = int(re.search(r"generated (\d+) events", final)[1])
    assert re.search(r"left undelivered at close [1-9]", final), result.output
    assert f"Error: {generated} events were not delivered" in result.output, result.output


def test_an_unknown_demo_sink_is_refused():
    with pytest.raises(ValueError, match="clickhouse, kafka or logger"):
        demo_sink("pigeon", kafka_bootstrap=None, clickhouse_url="http://127.0.0.1:8123")


def _demo_process(tmp_path, *args: str) -> subprocess.CompletedProcess:
    """`analytics demo` as an operator runs it, memory capped: an endless one fails, not the machine."""

    def cap_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (2 * 1024**3, 2 * 1024**3))

    return subprocess.run(
        [sys.executable, "-m", "analytics.cli", "demo", "--sink", "logger", "--duration", "1", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parent.parent,
        env={**os.environ, "ANALYTICS_DATA_DIR": str(tmp_path / "data")},
        preexec_fn=cap_memory,
    )


@pytest.mark.parametrize(
    ("args", "named"),
    [
        # A user table of that many entries was built before the first event: memory filled, nothing was said.
        (["--users", "99999999999999999999"], "--users (ANALYTICS_DEMO_USERS): Input should be less than or equal to"),
        # The generator planned every event of each interval before sending one, and never caught up.
        (["--rate", "1e300"], "--rate (ANALYTICS_DEMO_RATE): Input should be less than or equal to"),
    ],
)
def test_the_demo_command_refuses_more_users_or_events_than_it_can_simulate(tmp_path, args, named):
    try:
        result = _demo_process(tmp_path, *args)
    except subprocess.TimeoutExpired:
        pytest.fail(f"analytics demo {' '.join(args)} ran on past its one-second duration")
    assert result.returncode == 2, result.stderr
    assert f"invalid settings: {named}" in result.stderr and "Traceback" not in result.stderr, result.stderr
