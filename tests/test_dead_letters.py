"""Dead letters you can act on: `analytics dead-letters`, its replay, and Dagster's replay job, on the
embedded ClickHouse (messages inserted at Kafka positions as the bridge inserts them)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from urllib.parse import urlencode

import pytest
from click.testing import CliRunner

from analytics.cli import main
from core.clickhouse import connect
from embedded.bridge.framing import row_binary
from operations.dead_letters import ReplayResult, _rows_since, _settle
from orchestration.dead_letters.jobs import replay_dead_letters
from tests import embedded_server
from tests.intake import HTTP, execute, query
from tests.malformed import valid_event
from tests.test_contract_verdicts import KafkaRecord


def insert_messages(server, topic: str, kafka_topic: str, payloads: list[bytes], first_offset: int = 0) -> None:
    records = [KafkaRecord(payload, first_offset + n) for n, payload in enumerate(payloads)]
    url = f"{server.url}/?{urlencode({'query': f'INSERT INTO analytics.{topic}_messages FORMAT RowBinary'})}"
    response = HTTP.request("POST", url, body=row_binary(kafka_topic.encode(), records))
    assert response.status == 200, response.data


def refused_by_clickhouse(server, kafka_topic: str, offset: int, payload: bytes) -> None:
    """A dead letter as the bridge writes one when ClickHouse refused the insert itself (not the data's fault)."""
    execute(
        server,
        f"""INSERT INTO analytics.dead_letters (topic, partition, offset, raw_message, error, received_at)
            VALUES ('{kafka_topic}', 0, {offset}, unhex('{payload.hex()}'),
                    'ClickHouse refused it: Code: 1002. a fault since fixed', now64(3, 'UTC'))""",
    )


def letters(server, prefix: str) -> dict[tuple[str, int], str]:
    rows = query(
        server, f"SELECT topic, offset, error FROM analytics.dead_letters FINAL WHERE startsWith(topic, '{prefix}')"
    )
    return {(row["topic"], int(row["offset"])): row["error"] for row in rows}


def counted(server, user: str) -> tuple[int, int]:
    [row] = query(
        server,
        f"""SELECT (SELECT count() FROM analytics.job_events FINAL WHERE user_id = '{user}') AS jobs,
                   (SELECT sum(log_count) FROM analytics.analytics_events FINAL WHERE user_id = '{user}') AS logs""",
    )
    return int(row["jobs"]), int(row["logs"] or 0)


@pytest.fixture
def dead(analytics_db):
    """Dead letters of two topics: two the data's fault, two ClickHouse's (valid events, one keyless)."""
    # Replays below are limited to dead letters received since now, so other tests' stay as they are.
    [row] = query(analytics_db, "SELECT formatDateTime(now('UTC'), '%Y-%m-%d %H:%i:%S') AS now")
    since = row["now"]
    prefix = f"dl{uuid.uuid4().hex[:8]}."
    user = f"dl-{uuid.uuid4().hex[:8]}"
    jobs, legacy = prefix + "jobs", prefix + "analytics"
    bad_status = json.dumps({**valid_event("jobs", 1, user), "status": "DONE"}).encode()
    insert_messages(analytics_db, "jobs", jobs, [bad_status, b'{"event_id": "x1", "event_type": "job"'])
    good_job = json.dumps(valid_event("jobs", 2, user)).encode()
    keyless = json.dumps({**valid_event("analytics", 3, user), "EventKey": ""}).encode()
    refused_by_clickhouse(analytics_db, jobs, 2, good_job)
    refused_by_clickhouse(analytics_db, legacy, 7, keyless)
    settings = analytics_db.settings()
    env = {"ANALYTICS_CLICKHOUSE_HTTP_PORT": str(analytics_db.port)}
    return {
        "prefix": prefix,
        "user": user,
        "jobs": jobs,
        "legacy": legacy,
        "settings": settings,
        "env": env,
        "since": since,
    }


def test_dead_letters_are_listed_by_topic_and_error(analytics_db, dead):
    result = CliRunner().invoke(main, ["dead-letters", "--topic", dead["jobs"]], env=dead["env"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith(dead["jobs"])]
    assert len(lines) == 3  # three errors, one line each
    assert any("status_is_known" in line for line in lines)
    assert any("the message is not valid JSON" in line for line in lines)
    assert "3 dead letters" in result.output


def test_since_is_read_in_utc_whatever_offset_it_is_written_with(analytics_db, dead):
    since = dt.datetime.fromisoformat(dead["since"]).replace(tzinfo=dt.UTC)

    def listed(*args: str) -> list[str]:
        result = CliRunner().invoke(main, ["dead-letters", "--topic", dead["jobs"], *args], env=dead["env"])
        assert result.exit_code == 0, result.output
        return [line for line in result.output.splitlines() if line.startswith(dead["jobs"])]

    in_utc = listed("--since", dead["since"])
    assert len(in_utc) == 3
    for written in (since.isoformat().replace("+00:00", "Z"), since.astimezone(dt.timezone(dt.timedelta(hours=-5)))):
        assert listed("--since", str(written).replace(" ", "T")) == in_utc
    # An hour after they arrived, written at +01:00: none of them.
    assert (
        listed("--since", (since + dt.timedelta(hours=1)).astimezone(dt.timezone(dt.timedelta(hours=1))).isoformat())
        == []
    )
    refused = CliRunner().invoke(main, ["dead-letters", "--since", "2026-13-01"], env=dead["env"])
    assert refused.exit_code == 2
    assert "'2026-13-01' is not a time written YYYY-MM-DD[THH:MM[:SS[.fff]]]" in refused.output


def test_replay_takes_in_what_passes_now_keeps_what_fails_and_counts_nothing_twice(analytics_db, dead):
    prefix, user, env = dead["prefix"], dead["user"], dead["env"]
    dry = CliRunner().invoke(main, ["dead-letters", "replay", "--dry-run", "--since", dead["since"]], env=env)
    assert dry.exit_code == 0 and "would be replayed" in dry.output, dry.output
    assert counted(analytics_db, user) == (0, 0) and len(letters(analytics_db, prefix)) == 4

    outcomes = {dead["jobs"]: "replayed 3: 1 taken in, 2 still failing", dead["legacy"]: "replayed 1: 1 taken in, 0 "}
    for topic, outcome in outcomes.items():
        replayed = CliRunner().invoke(main, ["dead-letters", "replay", "--topic", topic], env=env)
        assert replayed.exit_code == 0, replayed.output
        assert outcome in replayed.output
    assert counted(analytics_db, user) == (1, 2)  # the valid job and the keyless LOGS event (count 2)
    remaining = letters(analytics_db, prefix)
    assert set(remaining) == {(dead["jobs"], 0), (dead["jobs"], 1)}
    assert remaining[(dead["jobs"], 0)].startswith("status_is_known")  # the new error of this replay

    # Replayed again, and a duplicate of an old dead letter replayed too: nothing counts twice.
    refused_by_clickhouse(
        analytics_db, dead["legacy"], 7, json.dumps({**valid_event("analytics", 3, user), "EventKey": ""}).encode()
    )
    again = CliRunner().invoke(main, ["dead-letters", "replay", "--since", dead["since"]], env=env)
    assert again.exit_code == 0, again.output
    assert counted(analytics_db, user) == (1, 2)
    assert set(letters(analytics_db, prefix)) == {(dead["jobs"], 0), (dead["jobs"], 1)}


def test_the_dagster_job_replays_the_same_way(analytics_db, dead):
    run_config = {"ops": {"replay_dead_letters_op": {"config": {"topic": dead["legacy"]}}}}
    result = replay_dead_letters.execute_in_process(run_config=run_config, resources={"settings": dead["settings"]})
    assert result.success
    assert counted(analytics_db, dead["user"]) == (0, 2)
    assert (dead["legacy"], 7) not in letters(analytics_db, dead["prefix"])
    assert result.output_for_node("replay_dead_letters_op") == 0  # none still failing


def test_the_dagster_job_names_a_since_it_cannot_read(analytics_db, dead):
    run_config = {"ops": {"replay_dead_letters_op": {"config": {"since": "yesterday"}}}}
    result = replay_dead_letters.execute_in_process(
        run_config=run_config, resources={"settings": dead["settings"]}, raise_on_error=False
    )
    assert not result.success
    [failure] = [event for event in result.all_events if event.is_step_failure]
    assert "config since: 'yesterday' is not a time written YYYY-MM-DD" in failure.step_failure_data.error.message


def test_the_dagster_job_names_a_topic_that_is_none_of_the_products(analytics_db, dead):
    run_config = {"ops": {"replay_dead_letters_op": {"config": {"topic": "jbos"}}}}
    result = replay_dead_letters.execute_in_process(
        run_config=run_config, resources={"settings": dead["settings"]}, raise_on_error=False
    )
    assert not result.success
    [failure] = [event for event in result.all_events if event.is_step_failure]
    error = failure.step_failure_data.error
    assert "config topic: no topic 'jbos'; the topics are workflows, jobs" in error.message
    assert error.cls_name == "Failure"  # the description alone, where a stack trace of UnknownTopic was shown


def test_a_message_with_several_wrong_fields_names_the_first_of_the_topics_fields(analytics_db):
    """The landing view names one field a message: the first of the topic's fields (dbt macro
    landing_fields) whose JSON value has the wrong type, whatever the order of the message's keys. A
    bare integer beyond 64 bits (20 digits or more, or 19 below Int64) in a string field is a number;
    quoted, the same digits are a string."""
    prefix, user = f"pf{uuid.uuid4().hex[:8]}.", f"pf-{uuid.uuid4().hex[:8]}"

    def message(n: int, first: dict, last: dict) -> bytes:
        rest = {k: v for k, v in valid_event("jobs", n, user).items() if k not in first and k not in last}
        return json.dumps({**first, **rest, **last}).encode()

    big = 12345678901234567890123
    insert_messages(
        analytics_db,
        "jobs",
        prefix + "jobs",
        [
            message(0, {"user_id": True}, {"event_id": 5}),
            message(1, {"status": big}, {"event_id": [1]}),
            message(2, {"status": {"a": 1}}, {"event_id": big}),
            message(3, {}, {"event_id": str(big)}),
            # Below Int64, 19 digits are beyond 64 bits too: taken as the text of the digits.
            message(4, {}, {"user_id": -(2**63) - 1}),
            message(5, {}, {"user_id": str(-(2**63) - 1)}),
        ],
    )
    assert letters(analytics_db, prefix) == {
        (prefix + "jobs", 0): "event_id is a number, not a string",
        (prefix + "jobs", 1): "event_id is an array, not a string",
        (prefix + "jobs", 2): "event_id is a number, not a string",
        (prefix + "jobs", 4): "user_id is a number, not a string",
    }


def test_a_clickhouse_refusing_is_named_with_its_answer(analytics_db, tmp_path):
    wrong = f"http://nobody:guess@127.0.0.1:{analytics_db.port}"
    result = CliRunner().invoke(main, ["dead-letters", "--clickhouse-url", wrong])
    assert result.exit_code == 1, result.output
    assert f"Error: ClickHouse at http://127.0.0.1:{analytics_db.port} refused: Code: 516." in result.output
    # A server without the schema: the way to build it.
    bare = embedded_server.start(tmp_path / "bare")
    try:
        result = CliRunner().invoke(main, ["dead-letters", "replay", "--clickhouse-url", bare.url])
    finally:
        bare.stop()
    assert result.exit_code == 1, result.output
    assert "Database analytics does not exist" in result.output, result.output
    assert "build the schema there with `analytics migrate`" in result.output


@pytest.mark.parametrize("command", [["dead-letters"], ["dead-letters", "replay", "--dry-run"]], ids=["list", "replay"])
def test_an_unknown_topic_is_refused_in_one_line_naming_the_topics(analytics_db, command):
    """A typo read as "no dead letters", or as "0 of 0" replayed."""
    env = {"ANALYTICS_CLICKHOUSE_HTTP_PORT": str(analytics_db.port)}
    result = CliRunner().invoke(main, [*command, "--topic", "job"], env=env)
    assert result.exit_code == 1, result.output
    assert result.output.splitlines() == [
        "Error: no topic 'job'; the topics are workflows, jobs, job_logs, analytics, telemetry (or their Kafka names)"
    ]


def test_a_still_failing_row_a_merge_folded_into_the_old_one_outlives_the_replays_delete(analytics_db):
    """dead_letters keeps a message's earliest row: a merge between a replay and its delete of the old
    rows folded the replay's new row (still failing, with its new error) into the old one, and the
    delete then removed the message's dead letter altogether."""
    topic = f"fold{uuid.uuid4().hex[:8]}.jobs"
    execute(
        analytics_db,
        f"""INSERT INTO analytics.dead_letters (topic, partition, offset, raw_message, error, received_at)
            VALUES ('{topic}', 0, 3, 'x', 'the first error', now64(3, 'UTC') - INTERVAL 1 HOUR)""",
    )
    client = connect.client(analytics_db.settings().clickhouse_connection)
    try:
        [[started]] = client.query("SELECT now64(3, 'UTC')").result_rows
        # As replay() does: no merge may fold the new row away before it is read.
        execute(analytics_db, "SYSTEM STOP MERGES analytics.dead_letters")
        try:
            execute(  # what the replay's insert dead-lettered again
                analytics_db,
                f"""INSERT INTO analytics.dead_letters (topic, partition, offset, raw_message, error, received_at)
                    VALUES ('{topic}', 0, 3, 'x', 'the error of the replay', now64(3, 'UTC') + INTERVAL 1 SECOND)""",
            )
            messages = [(topic, 0, 3, -1)]
            fresh = _rows_since(client, messages, started)
        finally:
            execute(analytics_db, "SYSTEM START MERGES analytics.dead_letters")
        assert len(fresh) == 1
        execute(analytics_db, "OPTIMIZE TABLE analytics.dead_letters FINAL")  # the merge: the first row wins
        result = ReplayResult(replayed=1)
        _settle(client, messages, started, fresh, result)
    finally:
        client.close()
    assert (result.still_failing, result.landed) == (1, 0)
    assert letters(analytics_db, topic) == {(topic, 3): "the error of the replay"}
