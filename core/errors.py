"""ClickHouse's error codes: the one list of the numbers and names this project reads or raises.

`Code` holds every code the project refers to (named as ClickHouse's ErrorCodes.cpp names them).
Below it, what the parts decide from a code:

- `TRANSIENT_ERRORS`: about ClickHouse's state, not the data: the same bytes can succeed later.
  The Kafka bridge waits these out (Kafka keeps the messages meanwhile).
- `DATA_ERRORS`: the data's fault (parse, type, range, a violated rule): retrying cannot help.
- `PRODUCER_RETRYABLE_ERRORS`: what the SDK's ClickHouse sink retries. Narrower than the
  bridge's list on purpose: a producer cannot wait for ever, so a missing table or a wrong
  password is reported to it at once instead of retried.
- `HTTP_STATUS_BY_NAME`: the HTTP status ClickHouse's HTTP handler answers an error with.

Pure Python, no dependencies: the producer SDK imports it too.
"""

from __future__ import annotations

from enum import IntEnum


class Code(IntEnum):
    UNEXPECTED_END_OF_FILE = 3
    CANNOT_PARSE_TEXT = 6
    CANNOT_PARSE_ESCAPE_SEQUENCE = 25
    CANNOT_PARSE_QUOTED_STRING = 26
    CANNOT_PARSE_INPUT_ASSERTION_FAILED = 27
    ATTEMPT_TO_READ_AFTER_EOF = 32
    CANNOT_READ_ALL_DATA = 33
    BAD_ARGUMENTS = 36
    CHECKSUM_DOESNT_MATCH = 40
    CANNOT_PARSE_DATE = 38
    CANNOT_PARSE_DATETIME = 41
    NOT_IMPLEMENTED = 48
    LOGICAL_ERROR = 49
    TYPE_MISMATCH = 53
    TABLE_ALREADY_EXISTS = 57
    UNKNOWN_TABLE = 60
    SYNTAX_ERROR = 62
    ARGUMENT_OUT_OF_BOUND = 69
    CANNOT_CONVERT_TYPE = 70
    CANNOT_PARSE_NUMBER = 72
    CANNOT_OPEN_FILE = 76
    UNKNOWN_TYPE_OF_QUERY = 78
    UNKNOWN_DATABASE = 81
    UNKNOWN_COMPRESSION_METHOD = 89
    UNKNOWN_SETTING = 115
    INCORRECT_DATA = 117
    TOO_LARGE_ARRAY_SIZE = 128
    TOO_LARGE_STRING_SIZE = 131
    TIMEOUT_EXCEEDED = 159
    READONLY = 164
    CANNOT_ALLOCATE_MEMORY = 173
    SIZES_OF_ARRAYS_DONT_MATCH = 190
    UNKNOWN_USER = 192
    WRONG_PASSWORD = 193
    REQUIRED_PASSWORD = 194
    TOO_MANY_SIMULTANEOUS_QUERIES = 202
    NO_FREE_CONNECTION = 203
    SOCKET_TIMEOUT = 209
    NETWORK_ERROR = 210
    QUERY_WITH_SAME_ID_IS_ALREADY_RUNNING = 216
    TABLE_IS_DROPPED = 218
    ABORTED = 236
    MEMORY_LIMIT_EXCEEDED = 241
    TABLE_IS_READ_ONLY = 242
    NOT_ENOUGH_SPACE = 243
    TOO_LARGE_SIZE_COMPRESSED = 246
    TOO_MANY_PARTS = 252
    CANNOT_DECOMPRESS = 271
    ALL_CONNECTION_TRIES_FAILED = 279
    TOO_FEW_LIVE_REPLICAS = 285
    UNSATISFIED_QUORUM_FOR_PREVIOUS_WRITE = 286
    DATABASE_ACCESS_DENIED = 291
    CANNOT_PIPE = 298
    UNKNOWN_STATUS_OF_INSERT = 319
    VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE = 321
    INTO_OUTFILE_NOT_ALLOWED = 358
    RECEIVED_ERROR_TOO_MANY_REQUESTS = 364
    SESSION_NOT_FOUND = 372
    SESSION_IS_LOCKED = 373
    INVALID_SESSION_TIMEOUT = 374
    CANNOT_PARSE_UUID = 376
    QUERY_WAS_CANCELLED = 394
    FUNCTION_THROW_IF_VALUE_IS_NON_ZERO = 395
    SYSTEM_ERROR = 425
    CANNOT_SCHEDULE_TASK = 439
    CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING = 441
    CANNOT_CREATE_TIMER = 460
    CANNOT_PARSE_BOOL = 467
    VIOLATED_CONSTRAINT = 469
    INVALID_SETTING_VALUE = 471
    DEADLOCK_AVOIDED = 473
    ACCESS_DENIED = 497
    AUTHENTICATION_FAILED = 516
    EPOLL_ERROR = 573
    CANNOT_PARSE_IPV4 = 676
    CANNOT_PARSE_IPV6 = 677
    KEEPER_EXCEPTION = 999
    POCO_EXCEPTION = 1000
    UNKNOWN_EXCEPTION = 1002


TRANSIENT_ERRORS = frozenset(
    {
        Code.UNEXPECTED_END_OF_FILE,  # a connection cut mid-answer
        Code.UNKNOWN_TABLE,  # the schema is not built yet
        Code.UNKNOWN_DATABASE,
        Code.TIMEOUT_EXCEEDED,
        Code.READONLY,
        Code.CANNOT_ALLOCATE_MEMORY,
        Code.UNKNOWN_USER,
        Code.WRONG_PASSWORD,
        Code.REQUIRED_PASSWORD,
        Code.TOO_MANY_SIMULTANEOUS_QUERIES,
        Code.NO_FREE_CONNECTION,
        Code.SOCKET_TIMEOUT,
        Code.NETWORK_ERROR,
        Code.TABLE_IS_DROPPED,
        Code.ABORTED,
        Code.MEMORY_LIMIT_EXCEEDED,
        Code.TABLE_IS_READ_ONLY,
        Code.NOT_ENOUGH_SPACE,
        Code.TOO_MANY_PARTS,
        Code.ALL_CONNECTION_TRIES_FAILED,
        Code.TOO_FEW_LIVE_REPLICAS,
        Code.UNSATISFIED_QUORUM_FOR_PREVIOUS_WRITE,
        Code.UNKNOWN_STATUS_OF_INSERT,
        Code.QUERY_WAS_CANCELLED,  # the server is shutting down
        Code.SYSTEM_ERROR,
        Code.CANNOT_SCHEDULE_TASK,
        Code.DEADLOCK_AVOIDED,
        *(Code.CANNOT_OPEN_FILE, Code.CANNOT_PIPE, Code.CANNOT_CREATE_TIMER, Code.EPOLL_ERROR),  # out of descriptors
        Code.ACCESS_DENIED,
        Code.AUTHENTICATION_FAILED,
        Code.KEEPER_EXCEPTION,
        Code.POCO_EXCEPTION,  # I/O
    }
)

DATA_ERRORS = frozenset(
    {
        Code.CANNOT_PARSE_TEXT,
        Code.CANNOT_PARSE_ESCAPE_SEQUENCE,
        Code.CANNOT_PARSE_QUOTED_STRING,
        Code.CANNOT_PARSE_INPUT_ASSERTION_FAILED,
        Code.ATTEMPT_TO_READ_AFTER_EOF,
        Code.CANNOT_READ_ALL_DATA,
        Code.CANNOT_PARSE_DATE,
        Code.CANNOT_PARSE_DATETIME,
        Code.TYPE_MISMATCH,
        Code.ARGUMENT_OUT_OF_BOUND,
        Code.CANNOT_CONVERT_TYPE,
        Code.CANNOT_PARSE_NUMBER,
        Code.INCORRECT_DATA,
        Code.TOO_LARGE_ARRAY_SIZE,
        Code.TOO_LARGE_STRING_SIZE,
        Code.SIZES_OF_ARRAYS_DONT_MATCH,
        Code.VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE,
        Code.CANNOT_PARSE_UUID,
        Code.FUNCTION_THROW_IF_VALUE_IS_NON_ZERO,  # a contract rule's throwIf
        Code.CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING,
        Code.VIOLATED_CONSTRAINT,
        Code.CANNOT_PARSE_IPV4,
        Code.CANNOT_PARSE_IPV6,
    }
)

PRODUCER_RETRYABLE_ERRORS = frozenset(
    {
        Code.TIMEOUT_EXCEEDED,
        Code.TOO_MANY_SIMULTANEOUS_QUERIES,
        Code.NO_FREE_CONNECTION,
        Code.SOCKET_TIMEOUT,
        Code.NETWORK_ERROR,
        Code.ABORTED,
        Code.MEMORY_LIMIT_EXCEEDED,
        Code.CANNOT_ALLOCATE_MEMORY,
        Code.NOT_ENOUGH_SPACE,  # a full disk: space is freed, merges shrink the parts
        *(Code.CANNOT_OPEN_FILE, Code.CANNOT_PIPE, Code.CANNOT_CREATE_TIMER, Code.EPOLL_ERROR),  # out of descriptors
        Code.TABLE_IS_READ_ONLY,
        Code.TOO_MANY_PARTS,
        Code.ALL_CONNECTION_TRIES_FAILED,
        Code.TOO_FEW_LIVE_REPLICAS,
        Code.UNKNOWN_STATUS_OF_INSERT,
        Code.RECEIVED_ERROR_TOO_MANY_REQUESTS,
        Code.SESSION_IS_LOCKED,
        Code.QUERY_WAS_CANCELLED,
        Code.SYSTEM_ERROR,
        Code.CANNOT_SCHEDULE_TASK,
        Code.KEEPER_EXCEPTION,
        Code.POCO_EXCEPTION,
    }
)

# As ClickHouse's exceptionCodeToHTTPStatus maps them (by the exception's name, which chDB's
# errors carry in their text); every other error is 500.
HTTP_STATUS_BY_NAME = {
    "REQUIRED_PASSWORD": 401,
    **dict.fromkeys(
        ("UNKNOWN_USER", "WRONG_PASSWORD", "AUTHENTICATION_FAILED", "SET_NON_GRANTED_ROLE", "ACCESS_DENIED"), 403
    ),
    **dict.fromkeys(
        (
            "BAD_ARGUMENTS",
            "CANNOT_COMPILE_REGEXP",
            "CANNOT_PARSE_TEXT",
            "CANNOT_PARSE_ESCAPE_SEQUENCE",
            "CANNOT_PARSE_QUOTED_STRING",
            "CANNOT_PARSE_DATE",
            "CANNOT_PARSE_DATETIME",
            "CANNOT_PARSE_NUMBER",
            "CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING",
            "CANNOT_PARSE_IPV4",
            "CANNOT_PARSE_IPV6",
            "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
            "CANNOT_PARSE_UUID",
            "DUPLICATE_COLUMN",
            "ILLEGAL_COLUMN",
            "UNKNOWN_ELEMENT_IN_AST",
            "UNKNOWN_TYPE_OF_AST_NODE",
            "THERE_IS_NO_COLUMN",
            "TOO_DEEP_AST",
            "TOO_BIG_AST",
            "UNEXPECTED_AST_STRUCTURE",
            "SYNTAX_ERROR",
            "INCORRECT_DATA",
            "TYPE_MISMATCH",
            "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE",
        ),
        400,
    ),
    **dict.fromkeys(
        (
            "UNKNOWN_TABLE",
            "UNKNOWN_FUNCTION",
            "UNKNOWN_IDENTIFIER",
            "UNKNOWN_TYPE",
            "UNKNOWN_STORAGE",
            "UNKNOWN_DATABASE",
            "UNKNOWN_SETTING",
            "UNKNOWN_DIRECTION_OF_SORTING",
            "UNKNOWN_AGGREGATE_FUNCTION",
            "UNKNOWN_FORMAT",
            "UNKNOWN_DATABASE_ENGINE",
            "UNKNOWN_TYPE_OF_QUERY",
            "UNKNOWN_ROLE",
        ),
        404,
    ),
    "QUERY_IS_TOO_LARGE": 413,
    "NOT_IMPLEMENTED": 501,
    "SOCKET_TIMEOUT": 503,
    "CANNOT_OPEN_FILE": 503,
    "CANNOT_SCHEDULE_TASK": 503,
    "HTTP_LENGTH_REQUIRED": 411,
    "TIMEOUT_EXCEEDED": 408,
    "UNSUPPORTED_MEDIA_TYPE": 415,
}


def http_status(name: str) -> int:
    """The HTTP status of an error with this exception name."""
    return HTTP_STATUS_BY_NAME.get(name, 500)
