"""How the bridge frames Kafka messages for ClickHouse: RowBinary, one row per message, bytes untouched.

Each message is one row of ``analytics.<topic>_messages``: its bytes as a length-prefixed String,
then its topic, partition, offset and timestamp, so ClickHouse sees every message on its own,
whatever its bytes: empty, not UTF-8, NUL bytes, newlines, several JSON values, megabytes. A
message ClickHouse refused outright becomes one RowBinary row of ``analytics.dead_letters``.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterable

from confluent_kafka import Message


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_U64 = struct.Struct("<Q")
# What follows a message's bytes and topic: partition, offset, and the Nullable(DateTime64(3))
# timestamp as a not-null marker and milliseconds; or, with no timestamp, the null marker alone.
_TAIL = struct.Struct("<QQBq")
_TAIL_NO_TIMESTAMP = struct.Struct("<QQB")
_ONE_BYTE_LENGTHS = [bytes((n,)) for n in range(0x80)]


def row_binary(kafka_topic: bytes, messages: Iterable[Message]) -> bytes:
    """RowBinary rows of (payload String, _topic String, _partition UInt64, _offset UInt64,
    _timestamp_ms Nullable(DateTime64(3))): one row per message, its bytes as they came.

    The bridge runs this for every message it consumes, so it appends to one buffer and packs
    each row's tail with one struct (benchmarks/bench_ingest.py reports the bridge's CPU)."""
    topic = _varint(len(kafka_topic)) + kafka_topic
    out = bytearray()
    for message in messages:
        value = message.value() or b""
        size = len(value)
        out += _ONE_BYTE_LENGTHS[size] if size < 0x80 else _varint(size)
        out += value
        out += topic
        milliseconds = message.timestamp()[1]
        if milliseconds is None or milliseconds < 0:
            out += _TAIL_NO_TIMESTAMP.pack(message.partition(), message.offset(), 1)
        else:
            out += _TAIL.pack(message.partition(), message.offset(), 0, milliseconds)
    return bytes(out)


def dead_letter_row(kafka_topic: bytes, message: Message, error: str) -> bytes:
    """A RowBinary row of dead_letters (topic, partition, offset, kafka_timestamp, raw_message, error,
    received_at)."""
    value = message.value() or b""
    milliseconds = message.timestamp()[1]
    return b"".join(
        (
            _varint(len(kafka_topic)),
            kafka_topic,
            b"\x00" + _U64.pack(message.partition()),
            b"\x00" + _U64.pack(message.offset()),
            b"\x01" if milliseconds is None or milliseconds < 0 else b"\x00" + struct.pack("<q", milliseconds),
            _varint(len(value)),
            value,
            _varint(len(error.encode())),
            error.encode(),
            struct.pack("<q", int(time.time() * 1000)),
        )
    )
