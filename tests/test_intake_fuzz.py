"""Valid events damaged at random, each between two valid neighbours of one batch through the HTTP
intake: a batch is taken whole, the damaged event counted unless its key came before, or refused
whole with the problem named and nothing of it stored. Seeded: a failure names the seed and the body.
"""

from __future__ import annotations

import json
import random
import re
import uuid
from urllib.parse import urlencode

from tests import datasets
from tests.intake import HTTP, insert_statement, query
from tests.malformed import as_event, damaged, past_retention

SEED = 20261207
RAW_TABLES = {"workflows": "workflow_events", "jobs": "job_events", "job_logs": "job_log_events"}
# A refusal names a contract rule, or is ClickHouse's parse error.
NAMED = re.compile(r"refused, \w+: |Cannot |Unexpected |Duplicate field|JSON|expected ")


def stored_ids(analytics_db, table: str, ids: list[str]) -> set[str]:
    listed = ", ".join("'" + event_id.replace("\\", "\\\\").replace("'", "\\'") + "'" for event_id in ids)
    return {
        row["event_id"]
        for row in query(analytics_db, f"SELECT event_id FROM analytics.{table} WHERE event_id IN ({listed})")
    }


def test_a_batch_with_a_damaged_event_is_taken_whole_or_refused_whole_with_the_problem_named(analytics_db):
    rng = random.Random(SEED)
    dataset = datasets.generate(seed=SEED % 1000, users=4)
    taken = refused = 0
    for topic, table in RAW_TABLES.items():
        for event in dataset.messages[topic][:50]:
            run = uuid.uuid4().hex[:10]
            neighbours = [{**event, "event_id": f"{run}-n{n}"} for n in (1, 2)]
            payload = damaged({**event, "event_id": f"{run}-d"}, rng)
            body = b"\n".join([json.dumps(neighbours[0]).encode(), payload, json.dumps(neighbours[1]).encode()])
            response = HTTP.request(
                "POST", f"{analytics_db.url}/?{urlencode({'query': insert_statement(topic)})}", body=body
            )
            text = response.data.decode(errors="replace")
            there = stored_ids(analytics_db, table, [f"{run}-n1", f"{run}-n2", f"{run}-d"])
            context = (SEED, topic, payload[:300], response.status, text[:300])
            if response.status == 200:
                taken += 1
                assert {f"{run}-n1", f"{run}-n2"} <= there, context
                damaged_event = as_event(payload) or {}
                if damaged_event.get("event_id") == f"{run}-d" and not (
                    topic == "job_logs" and past_retention(damaged_event)
                ):
                    assert f"{run}-d" in there, context
            else:
                refused += 1
                assert response.status in (400, 500), context
                assert NAMED.search(text), context
                assert not there, context
    assert taken > 20 and refused > 20, (taken, refused)
