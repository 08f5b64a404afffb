"""Raw history holds each delivered event once: checked under FINAL, as README's exactness promises."""

from __future__ import annotations

from tests import datasets
from tests.intake import query

# topic -> (raw table, the column holding the event's own key in the messages and in the table)
RAW_TABLES = {
    "workflows": ("workflow_events", "event_id", "event_id"),
    "jobs": ("job_events", "event_id", "event_id"),
    "job_logs": ("job_log_lines", "event_id", "event_id"),
    "analytics": ("legacy_events", "EventKey", "event_key"),
}


def assert_raw_history_once(server, dataset: datasets.Dataset) -> None:
    """Every distinct event of the data set is one row of its raw table under FINAL, and no other."""
    for topic, (table, message_key, column) in RAW_TABLES.items():
        sent = {message[message_key] for message in dataset.messages.get(topic, [])}
        [row] = query(
            server,
            f"""SELECT count() AS rows, uniqExact({column}) AS events FROM analytics.{table} FINAL
                WHERE startsWith(user_id, '{dataset.prefix}')""",
        )
        assert (int(row["rows"]), int(row["events"])) == (len(sent), len(sent)), table
