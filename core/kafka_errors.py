"""What a confluent-kafka exception says: KafkaException carries a KafkaError as its first argument."""

from __future__ import annotations


def kafka_error_code(error: BaseException) -> int | None:
    """The librdkafka error code a KafkaException carries (KafkaError.UNKNOWN_TOPIC_OR_PART...), if any."""
    detail = error.args[0] if error.args else None
    return detail.code() if hasattr(detail, "code") else None
