"""How the bridge cuts a topic's messages into inserts, read back by the real embedded ClickHouse
from a real broker: a block ends at the size in messages or in bytes, whichever comes first, so a
backlog of large messages is inserted in blocks of bounded bytes, in order, nothing left out."""

from __future__ import annotations

import pytest

from tests.intake import query
from tests.own_landing import own_landing

pytestmark = pytest.mark.kafka

MESSAGE_BYTES = 300_000
BLOCK_BYTES = 1024 * 1024  # three such messages


def test_a_backlog_of_large_messages_is_inserted_in_blocks_of_bounded_bytes(analytics_db, kafka):
    # Each row records how many rows its insert held.
    landing = own_landing(
        analytics_db,
        kafka,
        "offset UInt64, block_rows UInt64",
        "SELECT _offset AS offset, count() OVER () AS block_rows FROM {database}.jobs_messages",
    )
    # The whole backlog arrives within one flush interval.
    config = landing.config(flush_interval_ms=2000, max_block_bytes=BLOCK_BYTES)
    landing.produce([bytes([65 + n % 26]) * MESSAGE_BYTES for n in range(40)])
    landing.consume(config)
    landed = query(analytics_db, f"SELECT offset, block_rows FROM {landing.database}.landed ORDER BY offset")
    assert [int(row["offset"]) for row in landed] == list(range(40))
    blocks = [int(row["block_rows"]) for row in landed]
    assert max(blocks) == BLOCK_BYTES // MESSAGE_BYTES, blocks
    landing.drop()
