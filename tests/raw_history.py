"""Raw history holds each delivered event once: checked under FINAL, as README's exactness promises."""

from __future__ import annotations

from tests import datasets
from tests.intake import query

# topic -> (raw table, the column holding the event's own key in the messages and in the table)
RAW_TABLES = {
    "workflows": ("workflow_events", "event_id", "event_id"),
    "jobs": ("job_events", "event_id", "event_id"),
    "job_logs": ("job_log_events", "event_id", "event_id"),
    "analytics": ("analytics_events", "EventKey", "event_key"),
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


def jobs_whose_log_totals_are_off(server, dataset: datasets.Dataset) -> list[tuple[dict, dict]]:
    """(counted, raw) for each job whose job_log_totals differ from raw history under FINAL (lines, entries)."""
    counts = "toUInt64(countIf(is_line)) AS lines, toUInt64(sum(count)) AS entries"
    stored = query(
        server,
        f"""SELECT job_id, {counts} FROM analytics.job_log_events FINAL
            WHERE startsWith(user_id, '{dataset.prefix}') GROUP BY job_id ORDER BY job_id""",
    )
    counted = query(
        server,
        f"""SELECT job_id, sum(lines) AS lines, sum(entries) AS entries FROM analytics.job_log_totals
            WHERE startsWith(user_id, '{dataset.prefix}') GROUP BY job_id ORDER BY job_id""",
    )
    assert stored, "the data set has no job log events"
    assert [row["job_id"] for row in counted] == [row["job_id"] for row in stored]
    return [(count, raw) for count, raw in zip(counted, stored, strict=True) if count != raw]


def assert_job_log_totals_match_raw_history(server, dataset: datasets.Dataset) -> None:
    """job_log_totals counts each job's log events as raw history holds them (under FINAL): lines and entries."""
    off = jobs_whose_log_totals_are_off(server, dataset)
    assert off == [], f"job_log_totals against raw history, (counted, raw): {off[:5]} ({len(off)} jobs)"
