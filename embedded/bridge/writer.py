"""How the bridge hands messages to ClickHouse, and how it reads ClickHouse's answer.

The landing view parses each row of ``<topic>_messages`` into one typed row or one row with its
parse error, which the dead-letter view keeps (the Kafka engine's error-stream mode, done in SQL).

The answer: only failures that are clearly about ClickHouse's state (unreachable, timeouts,
memory, too many parts, shutting down, a schema not built yet, ...) are worth retrying. Known
data errors are the batch's fault. A code nobody classified is retried a few times, then treated
as data and logged, so an unknown error can never stall a partition forever. The codes of each
kind are core.errors' TRANSIENT_ERRORS and DATA_ERRORS.
"""

from __future__ import annotations

import enum

import urllib3
from confluent_kafka import Message

from core.clickhouse.http import HttpClient, NoAnswer, ServerError
from core.errors import DATA_ERRORS, TRANSIENT_ERRORS, Code
from core.names import DEAD_LETTERS, messages_table
from embedded.bridge.framing import dead_letter_row, row_binary

# A block is inserted on its own and answered when it is in, even where the server's profile joins
# small inserts (async_insert=1): the offsets are committed after the answer, and a block is large.
ALONE = {"async_insert": "0"}

# HTTP answers without a ClickHouse code that mean "not now" (a proxy or a server going away).
TRANSIENT_STATUSES = frozenset({408, 429, 502, 503, 504})


class Verdict(enum.Enum):
    TRANSIENT = "transient"
    DATA = "data"
    UNCLASSIFIED = "unclassified"


# Code 252 is also "Too many partitions for single INSERT block": the block's fault, not the
# server's state, and a smaller block passes (the bridge splits a refused block).
TOO_MANY_PARTITIONS = "partitions for single insert block"


def classify(status: int, code: int, message: str = "") -> Verdict:
    if code == Code.TOO_MANY_PARTS and TOO_MANY_PARTITIONS in message.lower():
        return Verdict.DATA
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


class LandingWriter:
    """Inserts raw Kafka messages into a topic's `<topic>_messages` table over ClickHouse's HTTP interface."""

    def __init__(self, clickhouse_url: str, database: str, topic: str, kafka_topic: str, user: str, password: str):
        self.clickhouse_url = clickhouse_url.rstrip("/")
        self.database = database
        self.topic = topic  # the product topic: it names the tables
        self.kafka_topic = kafka_topic  # what the rows record, like the Kafka engine's _topic
        self._topic_bytes = kafka_topic.encode()
        self.http = HttpClient(clickhouse_url, user, password, timeout=urllib3.Timeout(connect=5, read=300))

    def insert(self, messages: list[Message]) -> None:
        first, last = messages[0], messages[-1]
        params = {
            "query": f"INSERT INTO {self.database}.{messages_table(self.topic)} FORMAT RowBinary",
            **ALONE,
            # A batch retried after a crash carries the same token (where ClickHouse deduplicates blocks).
            "insert_deduplication_token": f"{self.topic}:{first.partition()}:{first.offset()}-{last.offset()}",
        }
        self.post(params, row_binary(self._topic_bytes, messages))

    def dead_letter(self, message: Message, error: str) -> None:
        """Write one message straight into dead_letters: for a message whose insert ClickHouse refused."""
        params = {
            "query": f"INSERT INTO {self.database}.{DEAD_LETTERS} (topic, partition, offset, kafka_timestamp, "
            "raw_message, error, received_at) FORMAT RowBinary",
            **ALONE,
        }
        self.post(params, dead_letter_row(self._topic_bytes, message, error))

    def post(self, params: dict[str, str], body: bytes) -> None:
        try:
            self.http.post(params, body)
        except NoAnswer as error:
            raise ClickHouseUnavailable(f"ClickHouse at {self.clickhouse_url} is unreachable: {error}") from None
        except ServerError as error:
            code = error.code or 0
            message = error.text.strip()[:2000]
            verdict = classify(error.status, code, message)
            if verdict is Verdict.TRANSIENT:
                raise ClickHouseUnavailable(f"ClickHouse answered {error.status}: {message}", code) from None
            raise InsertFailed(verdict, code, message) from None

    def close(self) -> None:
        self.http.close()
