"""The bridge's framing read back by the embedded ClickHouse: every message's bytes, topic, position and
timestamp arrive as they were, whatever the message's length (the length prefix's one-, two- and
three-byte forms), its bytes, or whether Kafka gave it a timestamp."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from urllib.parse import urlencode

from embedded.bridge.framing import row_binary
from tests.intake import HTTP, execute, query


@dataclass
class Record:
    """What the bridge reads of a consumed Kafka message."""

    payload: bytes | None
    position: tuple[int, int]
    milliseconds: int | None

    def value(self) -> bytes | None:
        return self.payload

    def partition(self) -> int:
        return self.position[0]

    def offset(self) -> int:
        return self.position[1]

    def timestamp(self) -> tuple[int, int | None]:
        # librdkafka: (TIMESTAMP_NOT_AVAILABLE, -1) when the message has none.
        return (0, -1) if self.milliseconds is None else (1, self.milliseconds)


def test_every_message_reads_back_as_it_was_framed(clickhouse):
    table = f"default.framed_{uuid.uuid4().hex[:8]}"
    execute(
        clickhouse,
        f"""CREATE TABLE {table} (payload String, _topic String, _partition UInt64, _offset UInt64,
            _timestamp_ms Nullable(DateTime64(3, 'UTC'))) ENGINE = Memory""",
    )
    records = [
        Record(None, (0, 0), 1_796_000_000_000),
        Record(b"", (0, 1), 1_796_000_000_001),
        Record(b"x" * 127, (1, 2), None),
        Record(b"y" * 128, (2, 3), 1_796_000_000_002),
        Record(b"\x00\n\xff" * 5461, (3, 4), None),  # 16,383 bytes: the last two-byte length
        Record(b"z" * 16_384, (2**31, 5), 0),
        Record(b'{"event_id":"e1"}\n{"event_id":"e2"}', (0, 2**40), 1_796_000_000_003),
    ]
    body = row_binary(b"prefix.jobs", records)
    url = f"{clickhouse.url}/?{urlencode({'query': f'INSERT INTO {table} FORMAT RowBinary'})}"
    response = HTTP.request("POST", url, body=body)
    assert response.status == 200, response.data

    rows = query(
        clickhouse,
        f"SELECT hex(payload) AS payload, _topic, _partition, _offset, toUnixTimestamp64Milli(_timestamp_ms) AS ms"
        f" FROM {table} ORDER BY _offset",
    )
    assert [row["payload"] for row in rows] == [(record.payload or b"").hex().upper() for record in records]
    assert {row["_topic"] for row in rows} == {"prefix.jobs"}
    assert [(int(row["_partition"]), int(row["_offset"])) for row in rows] == [record.position for record in records]
    assert [row["ms"] if row["ms"] is None else int(row["ms"]) for row in rows] == [r.milliseconds for r in records]
