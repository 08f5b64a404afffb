"""One contract, one verdict: the SDK's check, the HTTP intake and the Kafka landing path agree on
every event of one corpus (tests/contract_corpus.py), event by event."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from urllib.parse import urlencode

import pytest

from embedded.bridge.framing import row_binary
from events import InvalidEvent
from events.contract import validate_message
from tests.contract_corpus import corpus, encode, topic_of
from tests.intake import HTTP, insert_statement, query

pytestmark = pytest.mark.long_file(17)  # seconds of a worker, measured: run first (tests/scheduling.py)


@dataclass
class KafkaRecord:
    """What the bridge reads of a Kafka message: its bytes, position (partition 0) and timestamp."""

    payload: bytes
    number: int
    milliseconds: int = 1_795_507_200_000

    def value(self) -> bytes:
        return self.payload

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self.number

    def timestamp(self) -> tuple[int, int]:
        return (1, self.milliseconds)


def sdk_verdict(topic: str, event: dict) -> str | None:
    """None when the SDK would send the event to `topic`, else why not."""
    try:
        validate_message(event)
    except InvalidEvent as error:
        return str(error)
    if topic_of(event) != topic:
        return f"the SDK sends it to {topic_of(event)}, not {topic}"
    return None


def http_verdict(server, topic: str, body: bytes) -> str | None:
    response = HTTP.request("POST", f"{server.url}/?{urlencode({'query': insert_statement(topic)})}", body=body)
    return None if response.status == 200 else response.data.decode(errors="replace")[:300]


def http_verdicts(server, entries, bodies, sdk) -> list[str | None]:
    """Each event's verdict from the HTTP intake. An event the SDK refuses goes in a batch of its own,
    so each refusal is that event's. The events the SDK accepts go in one batch per topic: a batch
    is refused whole when any of its events is, so a 200 is every event's acceptance, and when it
    is refused, each of its events is sent alone to find the one refused. One batch after another,
    since many share an event id or a job, and the first-seen gate is exact for one sender at a time.
    """
    verdicts: list[str | None] = [None] * len(entries)
    for topic in sorted({topic for topic, _ in entries}):
        accepted = [i for i, (t, _) in enumerate(entries) if t == topic and sdk[i] is None]
        if http_verdict(server, topic, b"\n".join(bodies[i] for i in accepted)) is None:
            alone = [i for i, (t, _) in enumerate(entries) if t == topic and sdk[i] is not None]
        else:
            alone = [i for i, (t, _) in enumerate(entries) if t == topic]
        for i in alone:
            verdicts[i] = http_verdict(server, topic, bodies[i])
    return verdicts


def kafka_verdicts(server, topic: str, bodies: list[bytes]) -> dict[int, str]:
    """Insert the messages as the bridge does (RowBinary into <topic>_messages); the dead letters by offset."""
    kafka_topic = f"verdict{uuid.uuid4().hex[:8]}.{topic}"
    records = [KafkaRecord(body, n) for n, body in enumerate(bodies)]
    query_string = urlencode({"query": f"INSERT INTO analytics.{topic}_messages FORMAT RowBinary"})
    response = HTTP.request("POST", f"{server.url}/?{query_string}", body=row_binary(kafka_topic.encode(), records))
    assert response.status == 200, response.data.decode(errors="replace")
    letters = query(server, f"SELECT offset, error FROM analytics.dead_letters FINAL WHERE topic = '{kafka_topic}'")
    return {int(row["offset"]): row["error"] for row in letters}


def _own_ids(entries: list[tuple[str, dict]], prefix: str) -> list[tuple[str, dict]]:
    """Give the corpus's owners a prefix of this run, so its events stay out of other tests' numbers,
    and every entry ids of its own, so no two entries are one event, workflow or job."""
    owned = []
    for n, (topic, event) in enumerate(entries):
        event = dict(event)
        for key in ("user_id", "UserID"):
            if isinstance(event.get(key), str) and event[key]:
                event[key] = f"{prefix}-{event[key]}"
        for key in ("event_id", "EventKey", "workflow_id", "WorkflowID", "job_id"):
            if isinstance(event.get(key), str) and event[key]:
                event[key] = f"{event[key]}~{n}"
        owned.append((topic, event))
    return owned


@pytest.fixture(scope="module")
def verdicts(analytics_db):
    entries = _own_ids(corpus(), f"v{uuid.uuid4().hex[:6]}")
    bodies = [encode(event) for _, event in entries]
    sdk = [sdk_verdict(topic, event) for topic, event in entries]
    http = http_verdicts(analytics_db, entries, bodies, sdk)
    kafka: list[str | None] = [None] * len(entries)
    for topic in {topic for topic, _ in entries}:
        indexes = [i for i, (t, _) in enumerate(entries) if t == topic]
        letters = kafka_verdicts(analytics_db, topic, [bodies[i] for i in indexes])
        for number, index in enumerate(indexes):
            kafka[index] = letters.get(number)
    return entries, sdk, http, kafka


def _disagreements(entries, left, right) -> list[str]:
    return [
        f"{topic}: {json.dumps(event)[:300]}\n    one side: {a}\n    other side: {b}"
        for (topic, event), a, b in zip(entries, left, right, strict=True)
        if (a is None) != (b is None)
    ]


def test_the_corpus_exercises_both_verdicts_on_every_topic(verdicts):
    entries, sdk, _, _ = verdicts
    for topic in ("workflows", "jobs", "job_logs", "analytics", "telemetry"):
        outcomes = [verdict is None for (t, _), verdict in zip(entries, sdk, strict=True) if t == topic]
        assert outcomes.count(True) >= 5 and outcomes.count(False) >= 5, (topic, outcomes.count(True))


def test_the_http_intake_agrees_with_the_sdk_event_by_event(verdicts):
    entries, sdk, http, _ = verdicts
    disagreements = _disagreements(entries, sdk, http)
    assert not disagreements, f"{len(disagreements)} of {len(entries)} events:\n" + "\n".join(disagreements[:10])


def test_the_kafka_landing_path_agrees_with_the_sdk_event_by_event(verdicts):
    entries, sdk, _, kafka = verdicts
    disagreements = _disagreements(entries, sdk, kafka)
    assert not disagreements, f"{len(disagreements)} of {len(entries)} events:\n" + "\n".join(disagreements[:10])


def test_every_refusal_names_its_rule_or_parse_error(verdicts):
    entries, sdk, http, kafka = verdicts
    for verdict in filter(None, http):
        assert "refused, " in verdict or "while reading the value of key" in verdict, verdict
    for verdict in filter(None, kafka):
        assert re.match(r"the message |\w+ is |\w+: ", verdict), verdict
