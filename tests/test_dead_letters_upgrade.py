"""dead_letters of an earlier version (the last arrival of a dead letter won, keyed by position alone)
is upgraded in place by `analytics migrate`: the table of a fresh install, every row kept, each
dead letter at the earliest arrival stored, the views writing to it, and a second run changing nothing."""

from __future__ import annotations

import pytest

from operations.dbt import run_dbt
from operations.migrate import migrate
from tests.intake import execute, query
from tests.test_dead_letters import insert_messages

pytestmark = pytest.mark.long_file(25)  # seconds of a worker, measured: run first (tests/scheduling.py)

EARLIER_TABLE = """CREATE TABLE analytics.dead_letters_earlier (
    topic LowCardinality(String), partition Nullable(UInt64), offset Nullable(UInt64),
    kafka_timestamp Nullable(DateTime64(3, 'UTC')), raw_message String, error String,
    received_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree ORDER BY (topic, partition, offset) SETTINGS allow_nullable_key = 1"""

LETTER = """INSERT INTO analytics.dead_letters
                (topic, partition, offset, kafka_timestamp, raw_message, error, received_at)
            VALUES ('up.jobs', 0, {offset}, '2026-11-20 09:00:00', 'bad {offset}', 'broken', '{at}')"""

LETTERS = """SELECT topic, offset, raw_message, toString(received_at) AS received_at
             FROM analytics.dead_letters FINAL ORDER BY topic, offset"""

SHAPE = """SELECT engine_full, (SELECT groupArray((name, type, default_expression)) FROM
              (SELECT name, type, default_expression FROM system.columns
               WHERE database = 'analytics' AND table = 'dead_letters' ORDER BY position)) AS columns
           FROM system.tables WHERE database = 'analytics' AND name = 'dead_letters'"""


@pytest.fixture
def earlier_install(own_analytics_db):
    """A ClickHouse of its own on the current schema but for an earlier dead_letters holding letters,
    one of them delivered twice (its two rows not merged yet), and the shape of a fresh install."""
    server, settings = own_analytics_db
    [fresh] = query(server, SHAPE)
    execute(server, EARLIER_TABLE)
    # The views writing to dead_letters follow its name: they write to the earlier table now.
    execute(server, "EXCHANGE TABLES analytics.dead_letters AND analytics.dead_letters_earlier")
    execute(server, "DROP TABLE analytics.dead_letters_earlier SYNC")
    execute(server, "SYSTEM STOP MERGES analytics.dead_letters")
    execute(server, LETTER.format(offset=0, at="2026-11-20 10:00:00"))
    execute(server, LETTER.format(offset=1, at="2026-11-20 10:00:00"))
    execute(server, LETTER.format(offset=0, at="2026-11-20 11:00:00"))  # delivered again: the last won
    assert [row["received_at"] for row in query(server, LETTERS)] == [
        "2026-11-20 11:00:00.000",
        "2026-11-20 10:00:00.000",
    ]
    return server, settings, fresh


def test_an_earlier_dead_letters_keeps_every_letter_at_its_first_arrival(earlier_install):
    server, settings, fresh = earlier_install
    upgraded = migrate(settings, capture=True)
    assert upgraded.returncode == 0, upgraded.stdout[-3000:]
    assert "gave analytics.dead_letters a version keeping each dead letter's first arrival" in upgraded.stdout
    assert "copied 3 dead letters into analytics.dead_letters and dropped dead_letters_v1" in upgraded.stdout
    assert query(server, SHAPE) == [fresh]
    assert query(server, "SELECT count() AS n FROM system.tables WHERE name = 'dead_letters_v1'")[0]["n"] in (0, "0")
    assert [(row["offset"], row["received_at"]) for row in query(server, LETTERS)] == [
        (0, "2026-11-20 10:00:00.000"),
        (1, "2026-11-20 10:00:00.000"),
    ]

    # The views write to the new table: a message dead-lettered, then delivered again, stays at its first arrival.
    again_letters = LETTERS.replace("ORDER BY", "WHERE topic = 'up.again.jobs' ORDER BY")
    insert_messages(server, "jobs", "up.again.jobs", [b"not json"], first_offset=7)
    [first] = query(server, again_letters)
    insert_messages(server, "jobs", "up.again.jobs", [b"not json"], first_offset=7)
    [row] = query(server, "SELECT count() AS n FROM analytics.dead_letters WHERE topic = 'up.again.jobs'")
    assert int(row["n"]) == 2
    assert query(server, again_letters) == [first]

    again = migrate(settings, capture=True)
    assert again.returncode == 0, again.stdout[-3000:]
    assert "gave analytics.dead_letters" not in again.stdout and "copied" not in again.stdout
    assert len(query(server, LETTERS)) == 3


def test_an_upgrade_stopped_after_the_exchange_is_finished_by_the_next_run(earlier_install):
    server, settings, fresh = earlier_install
    # What a run stopped between the exchange and the copy leaves: the new table, the earlier one aside.
    execute(server, "RENAME TABLE analytics.dead_letters TO analytics.dead_letters_v1")
    made = run_dbt(settings, "run", "--select", "dead_letters", capture=True)
    assert made.returncode == 0, made.stdout[-3000:]
    assert query(server, LETTERS) == []
    finished = migrate(settings, capture=True)
    assert finished.returncode == 0, finished.stdout[-3000:]
    assert "copied 3 dead letters into analytics.dead_letters and dropped dead_letters_v1" in finished.stdout
    assert query(server, SHAPE) == [fresh]
    assert [(row["offset"], row["received_at"]) for row in query(server, LETTERS)] == [
        (0, "2026-11-20 10:00:00.000"),
        (1, "2026-11-20 10:00:00.000"),
    ]


def test_on_a_cluster_an_earlier_dead_letters_stops_the_run_and_names_the_steps(earlier_install):
    server, settings, fresh = earlier_install
    refused = migrate(settings.model_copy(update={"cluster": "analytics_cluster"}), capture=True)
    assert refused.returncode != 0
    assert "must be copied into a table of the new shape on every shard; nothing was changed" in refused.stdout
    assert 'README, "Upgrading dead_letters"' in refused.stdout
    assert query(server, SHAPE) != [fresh]
    assert len(query(server, LETTERS)) == 2
