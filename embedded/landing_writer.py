"""How the Kafka bridge hands messages to ClickHouse, and how it reads ClickHouse's answer.

Framing: each message is one RowBinary row of ``analytics.<topic>_messages`` (its bytes as a
length-prefixed String, then its topic, partition, offset and timestamp), so ClickHouse sees every
message on its own, whatever its bytes: empty, not UTF-8, NUL bytes, newlines, several JSON
values, megabytes. The landing view parses each row into one typed row or one row with its parse
error, which the dead-letter view keeps (the Kafka engine's error-stream mode, done in SQL).

The answer: only failures that are clearly about ClickHouse's state (unreachable, timeouts,
memory, too many parts, shutting down, a schema not built yet, ...) are worth retrying. Known
data errors are the batch's fault. A code nobody classified is retried a few times, then treated
as data and logged, so an unknown error can never stall a partition forever.
"""

from __future__ import annotations

import enum
import struct
import time
from collections.abc import Iterable
from urllib.parse import urlencode

import urllib3
from confluent_kafka import Message

# ClickHouse error codes about its state, not the data: retrying the same bytes can succeed.
TRANSIENT_ERRORS = frozenset(
    {
        3,  # UNEXPECTED_END_OF_FILE (a connection cut mid-answer)
        60,  # UNKNOWN_TABLE: the schema is not built yet
        81,  # UNKNOWN_DATABASE
        159,  # TIMEOUT_EXCEEDED
        164,  # READONLY
        173,  # CANNOT_ALLOCATE_MEMORY
        192,  # UNKNOWN_USER
        193,  # WRONG_PASSWORD
        194,  # REQUIRED_PASSWORD
        202,  # TOO_MANY_SIMULTANEOUS_QUERIES
        203,  # NO_FREE_CONNECTION
        209,  # SOCKET_TIMEOUT
        210,  # NETWORK_ERROR
        218,  # TABLE_IS_DROPPED
        236,  # ABORTED
        241,  # MEMORY_LIMIT_EXCEEDED
        242,  # TABLE_IS_READ_ONLY
        243,  # NOT_ENOUGH_SPACE
        252,  # TOO_MANY_PARTS
        279,  # ALL_CONNECTION_TRIES_FAILED
        285,  # TOO_FEW_LIVE_REPLICAS
        286,  # UNSATISFIED_QUORUM_FOR_PREVIOUS_WRITE
        319,  # UNKNOWN_STATUS_OF_INSERT
        394,  # QUERY_WAS_CANCELLED (the server is shutting down)
        425,  # SYSTEM_ERROR
        439,  # CANNOT_SCHEDULE_TASK
        473,  # DEADLOCK_AVOIDED
        497,  # ACCESS_DENIED
        516,  # AUTHENTICATION_FAILED
        999,  # KEEPER_EXCEPTION
        1000,  # POCO_EXCEPTION (I/O)
    }
)

# ClickHouse error codes about the data: parse, type and value errors, and the contract's throwIf.
DATA_ERRORS = frozenset(
    {6, 25, 26, 27, 32, 33, 38, 41, 53, 69, 70, 72, 117, 128, 131, 190, 321, 376, 395, 441, 469, 676, 677}
)

# HTTP answers without a ClickHouse code that mean "not now" (a proxy or a server going away).
TRANSIENT_STATUSES = frozenset({408, 429, 502, 503, 504})


class Verdict(enum.Enum):
    TRANSIENT = "transient"
    DATA = "data"
    UNCLASSIFIED = "unclassified"


def classify(status: int, code: int) -> Verdict:
    if code in TRANSIENT_ERRORS or (code == 0 and status in TRANSIENT_STATUSES):
        return Verdict.TRANSIENT
    if code in DATA_ERRORS:
        return Verdict.DATA
    return Verdict.UNCLASSIFIED


class InsertFailed(Exception):
    """ClickHouse refused an insert; `verdict` says whether the data or ClickHouse is to blame."""

    def __init__(self, verdict: Verdict, code: int, message: str):
        super().__init__(message)
        self.verdict = verdict
        self.code = code


class ClickHouseUnavailable(InsertFailed):
    """The insert could not be done now: ClickHouse unreachable or in a state that should pass."""

    def __init__(self, message: str, code: int = 0):
        super().__init__(Verdict.TRANSIENT, code, message)


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_U64 = struct.Struct("<Q")
_TIMESTAMP = struct.Struct("<Bq")  # Nullable(DateTime64(3)): not-null marker, milliseconds


def row_binary(kafka_topic: bytes, messages: Iterable[Message]) -> bytes:
    """RowBinary rows of (payload String, _topic String, _partition UInt64, _offset UInt64,
    _timestamp_ms Nullable(DateTime64(3))): one row per message, its bytes as they came."""
    topic = _varint(len(kafka_topic)) + kafka_topic
    parts = []
    for message in messages:
        value = message.value() or b""
        kind, milliseconds = message.timestamp()
        stamp = b"\x01" if milliseconds is None or milliseconds < 0 else _TIMESTAMP.pack(0, milliseconds)
        parts += (_varint(len(value)), value, topic, _U64.pack(message.partition()), _U64.pack(message.offset()), stamp)
    return b"".join(parts)


class LandingWriter:
    """Inserts raw Kafka messages into a topic's `<topic>_messages` table over ClickHouse's HTTP interface."""

    def __init__(self, clickhouse_url: str, database: str, topic: str, kafka_topic: str, user: str, password: str):
        self.clickhouse_url = clickhouse_url.rstrip("/")
        self.database = database
        self.topic = topic  # the product topic: it names the tables
        self.kafka_topic = kafka_topic  # what the rows record, like the Kafka engine's _topic
        self._topic_bytes = kafka_topic.encode()
        self.http = urllib3.PoolManager(
            retries=False,
            timeout=urllib3.Timeout(connect=5, read=300),
            headers={"X-ClickHouse-User": user, "X-ClickHouse-Key": password},
        )

    def insert(self, messages: list[Message]) -> None:
        first, last = messages[0], messages[-1]
        params = {
            "query": f"INSERT INTO {self.database}.{self.topic}_messages FORMAT RowBinary",
            # A batch retried after a crash carries the same token (where ClickHouse deduplicates blocks).
            "insert_deduplication_token": f"{self.topic}:{first.partition()}:{first.offset()}-{last.offset()}",
        }
        self.post(params, row_binary(self._topic_bytes, messages))

    def dead_letter(self, message: Message, error: str) -> None:
        """Write one message straight into dead_letters: for a message whose insert ClickHouse refused."""
        value = message.value() or b""
        body = b"".join(
            (
                _varint(len(self._topic_bytes)),
                self._topic_bytes,
                b"\x00" + _U64.pack(message.partition()),
                b"\x00" + _U64.pack(message.offset()),
                _varint(len(value)),
                value,
                _varint(len(error.encode())),
                error.encode(),
                struct.pack("<q", int(time.time() * 1000)),
            )
        )
        params = {
            "query": f"INSERT INTO {self.database}.dead_letters (topic, partition, offset, raw_message, error, "
            "received_at) FORMAT RowBinary"
        }
        self.post(params, body)

    def post(self, params: dict[str, str], body: bytes) -> None:
        url = f"{self.clickhouse_url}/?{urlencode(params)}"
        try:
            response = self.http.request("POST", url, body=body)
        except urllib3.exceptions.HTTPError as error:
            raise ClickHouseUnavailable(f"ClickHouse at {self.clickhouse_url} is unreachable: {error}") from None
        if response.status == 200:
            return
        code = int(response.headers.get("X-ClickHouse-Exception-Code", "0") or 0)
        message = response.data.decode("utf-8", "replace").strip()[:2000]
        verdict = classify(response.status, code)
        if verdict is Verdict.TRANSIENT:
            raise ClickHouseUnavailable(f"ClickHouse answered {response.status}: {message}", code)
        raise InsertFailed(verdict, code, message)
