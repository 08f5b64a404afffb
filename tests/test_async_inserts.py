"""`async_insert=1` on the embedded server: small inserts from many senders are joined into one
insert (chDB alone would run each through the whole view chain), with each sender's own verdict."""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode

import pytest

from tests import datasets
from tests.checks import assert_matches
from tests.intake import HTTP, execute, insert_statement, query
from tests.malformed import valid_event

ASYNC = {"async_insert": "1", "wait_for_async_insert": "1", "async_insert_busy_timeout_ms": "300"}


def post(server, topic: str, messages: list[dict], **settings: str):
    body = "\n".join(json.dumps(message) for message in messages).encode()
    return HTTP.request("POST", f"{server.url}/?{urlencode({'query': insert_statement(topic), **settings})}", body=body)


def small_batches(messages: dict[str, list[dict]], size: int) -> list[tuple[str, list[dict]]]:
    return [
        (topic, batch[start : start + size])
        for topic, batch in messages.items()
        for start in range(0, len(batch), size)
    ]


def test_small_inserts_from_many_senders_count_exactly_once(analytics_db):
    dataset = datasets.generate(seed=61, users=5, workflows_per_user=3, jobs_per_workflow=4)  # with duplicates
    batches = small_batches(dataset.messages, 7)
    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda job: post(analytics_db, *job, **ASYNC), batches))
    assert [a.status for a in answers] == [200] * len(answers), [a.data[:300] for a in answers if a.status != 200]
    assert_matches(analytics_db, dataset)


def test_a_bad_batch_among_good_ones_is_refused_alone_and_stores_nothing(analytics_db):
    dataset = datasets.generate(seed=62, users=3, workflows_per_user=2, jobs_per_workflow=3)
    batches = small_batches(dataset.messages, 5)
    bad_id = f"{dataset.prefix}-bad"
    bad = {
        "event_id": bad_id,
        "event_time": "yesterday",
        "event_type": "job",
        "event_name": "created",
        "user_id": f"{dataset.prefix}-u",
        "workflow_id": "w",
        "job_id": "j",
        "status": "pending",
    }
    good_in_bad_batch = dict(bad, event_id=f"{dataset.prefix}-good-neighbour", event_time="2026-11-20T10:00:00Z")
    jobs = [i for i, (topic, _) in enumerate(batches) if topic == "jobs"]
    batches.insert(jobs[len(jobs) // 2], ("jobs", [good_in_bad_batch, bad]))
    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda job: post(analytics_db, *job, **ASYNC), batches))
    refused = [(batch, a) for batch, a in zip(batches, answers, strict=True) if a.status != 200]
    assert len(refused) == 1, [a.data[:300] for _, a in refused]
    (topic, messages), answer = refused[0]
    assert [m["event_id"] for m in messages] == [good_in_bad_batch["event_id"], bad_id]
    assert b"event_time" in answer.data  # the rule broken is named
    ids = f"'{bad_id}', '{good_in_bad_batch['event_id']}'"
    stored = query(analytics_db, f"SELECT count() AS n FROM analytics.job_events WHERE event_id IN ({ids})")
    assert stored == [{"n": 0}]  # nothing of the refused batch
    assert_matches(analytics_db, dataset)  # every other sender's events, exactly


def test_without_waiting_the_answer_comes_at_once_and_the_rows_follow(analytics_db):
    dataset = datasets.generate(seed=63, users=2, workflows_per_user=2, jobs_per_workflow=2)
    settings = dict(ASYNC, wait_for_async_insert="0", async_insert_busy_timeout_ms="500")
    for topic, batch in small_batches(dataset.messages, 50):
        assert post(analytics_db, topic, batch, **settings).status == 200
    deadline = time.monotonic() + 30
    while True:
        try:
            assert_matches(analytics_db, dataset)
            break
        except AssertionError:
            assert time.monotonic() < deadline
            time.sleep(0.2)


def test_a_refusal_nobody_waits_for_is_logged_and_counted(analytics_db):
    """Answered at once (wait_for_async_insert=0), a batch refused when it went in was said nowhere:
    README promises the failure is logged, and nothing was, nor counted. Its neighbour still counts."""
    from tests.test_metrics import scrape, value

    user = f"late-{uuid.uuid4().hex[:8]}"
    good = [valid_event("telemetry", n, user) for n in range(3)]
    bad = [valid_event("telemetry", 3, user), {**valid_event("telemetry", 4, user), "event_time": "yesterday"}]
    settings = dict(ASYNC, wait_for_async_insert="0", async_insert_use_adaptive_busy_timeout="0")
    before = scrape(f"{analytics_db.url}/metrics")
    with ThreadPoolExecutor(2) as pool:  # joined: the batch fails, and each goes in on its own
        answers = list(pool.map(lambda batch: post(analytics_db, "telemetry", batch, **settings), (good, bad)))
    assert [answer.status for answer in answers] == [200, 200]
    said = f'was refused when its batch went in; none of its rows are stored: telemetry event "{user}-e4" refused'
    stored = f"SELECT event_id FROM analytics.telemetry_events WHERE user_id = '{user}' ORDER BY event_id"
    for _ in range(600):  # the batch goes in after the answers
        if said in analytics_db.log() and len(query(analytics_db, stored)) == len(good):
            break
        time.sleep(0.05)
    assert analytics_db.log().count(said) == 1
    after = scrape(f"{analytics_db.url}/metrics")
    grew = value(after, "analytics_http_late_insert_errors_total", code="395")
    assert grew - value(before, "analytics_http_late_insert_errors_total", code="395") == 1
    assert [row["event_id"] for row in query(analytics_db, stored)] == [event["event_id"] for event in good]


def test_inserts_with_different_settings_are_never_joined(analytics_db):
    """Two senders into one table at one moment, rows with a field the table does not have: the
    one that asks for unknown fields to be refused is refused, the other's rows count."""
    dataset = datasets.generate(seed=64, users=1, workflows_per_user=1, jobs_per_workflow=2)
    other = datasets.generate(seed=65, users=1, workflows_per_user=1, jobs_per_workflow=2)
    jobs = [dict(m, unknown_field=1) for m in dataset.messages["jobs"]]
    refused_jobs = [dict(m, unknown_field=1) for m in other.messages["jobs"]]
    strict = dict(ASYNC, input_format_skip_unknown_fields="0")
    with ThreadPoolExecutor(2) as pool:
        lenient = pool.submit(post, analytics_db, "jobs", jobs, **ASYNC)
        refused = pool.submit(post, analytics_db, "jobs", refused_jobs, **strict)
    assert lenient.result().status == 200, lenient.result().data[:500]
    assert refused.result().status != 200
    assert b"unknown_field" in refused.result().data
    for topic, messages in dataset.messages.items():
        if topic != "jobs" and messages:
            assert post(analytics_db, topic, messages, **ASYNC).status == 200
    assert_matches(analytics_db, dataset)


@pytest.mark.parametrize(
    ("name", "value", "error"),
    [
        ("async_insert", "yes", "CANNOT_PARSE_BOOL"),
        ("wait_for_async_insert", "2", "CANNOT_PARSE_BOOL"),
        ("async_insert_busy_timeout_ms", "abc", "CANNOT_PARSE_INPUT_ASSERTION_FAILED"),
        ("async_insert_busy_timeout_ms", "-5", "CANNOT_PARSE_NUMBER"),
        ("async_insert_max_data_size", "1.5", "CANNOT_PARSE_INPUT_ASSERTION_FAILED"),
        ("async_insert_busy_timeout_increase_rate", "0", "INVALID_SETTING_VALUE"),
        ("async_insert_busy_timeout_max_ms", "0", "INVALID_SETTING_VALUE"),
    ],
)
def test_a_queue_setting_clickhouse_cannot_parse_is_refused_and_nothing_is_stored(analytics_db, name, value, error):
    dataset = datasets.generate(seed=64, users=1, workflows_per_user=1, jobs_per_workflow=1)
    [event, *_] = dataset.messages["jobs"]
    # Without waiting too: the refusal must come before the early answer, or the rows would be lost unseen.
    answer = post(analytics_db, "jobs", [event], **{**ASYNC, "wait_for_async_insert": "0", name: value})
    assert answer.status != 200
    assert error in answer.data.decode() and name in answer.data.decode()
    time.sleep(0.5)  # a batch that was wrongly queued would be in by now
    [row] = query(analytics_db, f"select count() as n from analytics.job_events where event_id = '{event['event_id']}'")
    assert row["n"] == 0


def test_a_batch_going_in_leaves_the_query_id_of_its_first_sender_to_that_senders_next_query(analytics_db):
    """The sender, answered at once, reuses its query id for a long query while its rows wait for
    their batch. The batch ran as that id and, ending, struck it from the running queries: a second
    query of the id was no longer refused, and the long one no longer counted against the limit."""
    execute(analytics_db, "CREATE TABLE IF NOT EXISTS default.batch_ids (x UInt64) ENGINE = MergeTree ORDER BY x")
    query_id = f"reused-{time.monotonic_ns()}"
    settings = {
        "query": "INSERT INTO default.batch_ids FORMAT JSONEachRow",
        "query_id": query_id,
        "async_insert": "1",
        "wait_for_async_insert": "0",
        "async_insert_use_adaptive_busy_timeout": "0",
        "async_insert_busy_timeout_ms": "5000",
    }
    assert HTTP.request("POST", f"{analytics_db.url}/?{urlencode(settings)}", body=b'{"x": 1}').status == 200

    def same_id(sql: str) -> int:
        url = f"{analytics_db.url}/?{urlencode({'query_id': query_id})}"
        return HTTP.request("POST", url, body=sql.encode()).status

    long_query = "SELECT sleepEachRow(0.5) FROM numbers(240) SETTINGS max_block_size = 1"
    with ThreadPoolExecutor(1) as pool:
        long = pool.submit(same_id, long_query)
        try:
            deadline = time.monotonic() + 30
            while same_id("SELECT 1") == 200:  # until the long query holds the id
                assert time.monotonic() < deadline
                if long.done():  # it came while a probe held the id, and was refused: it goes again
                    assert long.result() != 200
                    long = pool.submit(same_id, long_query)
                time.sleep(0.05)
            deadline = time.monotonic() + 30
            while query(analytics_db, "SELECT count() AS n FROM default.batch_ids") != [{"n": 1}]:
                assert time.monotonic() < deadline, "the batch never went in"
                time.sleep(0.2)
            assert same_id("SELECT 1") != 200, "the id of a running query was taken again"
        finally:
            execute(analytics_db, f"KILL QUERY WHERE query_id = '{query_id}' SYNC")
            long.result(60)
    execute(analytics_db, "DROP TABLE default.batch_ids")
