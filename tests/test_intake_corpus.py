"""The malformed messages of the Kafka corpus through the HTTP intake, each between two valid events
of one batch: the batch is refused whole with the rule or parse error named, and nothing of it is
stored (except the few shapes that are valid JSON-lines batches; tests/malformed.py says which)."""

from __future__ import annotations

import json
import re
import uuid
from urllib.parse import urlencode

import pytest

from tests.intake import HTTP, insert_statement, query
from tests.malformed import http_accepts, shapes, valid_event

TOPICS = ("workflows", "jobs", "job_logs", "analytics", "telemetry")
RAW_TABLES = {
    "workflows": ("workflow_events", "user_id"),
    "jobs": ("job_events", "user_id"),
    "job_logs": ("job_log_events", "user_id"),
    "analytics": ("analytics_events", "user_id"),
    "telemetry": ("telemetry_events", "user_id"),
}
# A refusal names a contract rule, or is ClickHouse's parse error.
NAMED = re.compile(r"refused, \w+: |Cannot |Unexpected |Duplicate field|JSON|expected ")


@pytest.mark.parametrize("topic", TOPICS)
def test_a_batch_with_a_malformed_message_is_refused_whole_with_the_problem_named(analytics_db, topic):
    refused = 0
    for shape in shapes(topic):
        user = f"in{uuid.uuid4().hex[:10]}"
        neighbours = [json.dumps(valid_event(topic, n, user)).encode() for n in (1, 2)]
        body = neighbours[0] + b"\n" + shape.payload + b"\n" + neighbours[1]
        response = HTTP.request(
            "POST", f"{analytics_db.url}/?{urlencode({'query': insert_statement(topic)})}", body=body
        )
        table, column = RAW_TABLES[topic]
        stored = int(
            query(analytics_db, f"SELECT count() AS n FROM analytics.{table} WHERE {column} = '{user}'")[0]["n"]
        )
        if http_accepts(topic, shape):
            assert response.status == 200, (shape.name, response.data[:300])
            continue
        text = response.data.decode(errors="replace")
        assert response.status in (400, 500), (shape.name, response.status)
        assert NAMED.search(text), (shape.name, text[:300])
        assert stored == 0, (shape.name, stored)
        refused += 1
    assert refused >= 30


def test_telemetry_sent_as_the_other_topics_are_is_refused_with_the_statement_to_use(analytics_db):
    """JSONEachRow maps keys to columns: into telemetry's one `message` column it lands nothing but
    empty messages (ClickHouse skips unknown keys), which the intake refuses, naming the statement."""
    user = f"in{uuid.uuid4().hex[:10]}"
    body = b"\n".join(json.dumps(valid_event("telemetry", n, user)).encode() for n in (1, 2))
    statement = "INSERT INTO analytics.telemetry_queue FORMAT JSONEachRow"
    response = HTTP.request("POST", f"{analytics_db.url}/?{urlencode({'query': statement})}", body=body)
    text = response.data.decode(errors="replace")
    assert response.status in (400, 500), text[:300]
    assert "message_is_not_empty: the message is empty" in text, text[:300]
    assert "insert it with (message) FORMAT JSONAsString" in text, text[:300]
    stored = query(analytics_db, f"SELECT count() AS n FROM analytics.telemetry_events WHERE user_id = '{user}'")
    assert int(stored[0]["n"]) == 0


@pytest.mark.parametrize("levels, taken", [(1024, True), (1025, False)])
def test_telemetry_nested_past_what_json_parsing_takes_is_refused_naming_the_depth(analytics_db, levels, taken):
    user = f"in{uuid.uuid4().hex[:10]}"
    event = json.dumps(valid_event("telemetry", 1, user)).encode()
    nested = b'{"a":' * (levels - 2) + b"{}" + b"}" * (levels - 2)  # the event itself is the first level
    body = event[:-1] + b',"nested":' + nested + b"}"
    statement = "INSERT INTO analytics.telemetry_queue (message) FORMAT JSONAsString"
    response = HTTP.request("POST", f"{analytics_db.url}/?{urlencode({'query': statement})}", body=body)
    text = response.data.decode(errors="replace")
    stored = query(analytics_db, f"SELECT count() AS n FROM analytics.telemetry_events WHERE user_id = '{user}'")
    if taken:
        assert (response.status, int(stored[0]["n"])) == (200, 1), text[:300]
    else:
        assert "message_is_an_object: the message is not a JSON object in UTF-8, nested at most 1024" in text
        assert int(stored[0]["n"]) == 0


@pytest.mark.parametrize("number", ["1e400", "-1e400"])
def test_telemetry_with_a_number_past_a_float64_is_refused_naming_it_and_its_event(analytics_db, number):
    """ClickHouse takes no JSON number past a Float64: such an event was refused as 'without an
    event_id' and 'not a JSON object', which sent its sender looking for an event with no id."""
    user = f"big{uuid.uuid4().hex[:10]}"
    event = valid_event("telemetry", 7, user)
    message = json.dumps(event)[:-1] + f', "reading": {number}}}'
    body = json.dumps(valid_event("telemetry", 1, user)) + "\n" + message
    response = HTTP.request(
        "POST", f"{analytics_db.url}/?{urlencode({'query': insert_statement('telemetry')})}", body=body.encode()
    )
    text = response.data.decode()
    assert response.status == 400, text
    assert f'telemetry event "{event["event_id"]}" refused, message_is_an_object: ' in text
    assert "its numbers within a Float64 (1e400 is not)" in text
    stored = f"SELECT count() AS n FROM analytics.telemetry_events WHERE user_id = '{user}'"
    assert int(query(analytics_db, stored)[0]["n"]) == 0
