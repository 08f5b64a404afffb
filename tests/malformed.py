"""Malformed Kafka messages: what a broken or careless producer puts on a topic.

Each shape is the bytes of one message. Over Kafka every one must end as exactly one dead letter
(its position and bytes kept); over the HTTP intake, whose body is a batch of JSON lines, a batch
holding one must be refused whole, except for the few shapes that are valid batches there (see
`http_accepts`). A leading UTF-8 byte order mark is not among them: RFC 8259 lets a parser ignore
it, Python's json and the landing path do, and the event counts. `damaged` breaks a valid event at
random (seeded) for the fuzz tests of both paths.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

# Each topic's fields and a wrong JSON value for each (the landing tables' kinds; dbt macro landing_fields).
WRONG_TYPES = {
    "workflows": {
        "event_id": 5,
        "event_time": 1_700_000_000,
        "event_type": ["workflow"],
        "event_name": True,
        "user_id": {"id": 1},
        "workflow_id": 1.5,
        "kind": False,
    },
    "jobs": {
        "event_id": True,
        "event_time": {"t": 1},
        "event_type": 7,
        "event_name": ["created"],
        "user_id": 3,
        "workflow_id": None,
        "job_id": [1],
        "status": 1,
        "scheduled_at": 5,
        "started_at": True,
        "completed_at": {"at": 1},
    },
    "job_logs": {
        "event_id": [],
        "event_time": False,
        "event_type": {"a": 1},
        "event_name": 1,
        "user_id": True,
        "workflow_id": ["w"],
        "job_id": 9,
        "count": "5",
        "stream": 1,
        "sequence": "first",
        "message": {"m": 1},
    },
    "analytics": {"EventKey": 5, "UserID": True, "WorkflowID": ["w"], "EventType": 1, "Data": "kind"},
    "telemetry": {
        "event_id": 5,
        "event_time": 1_700_000_000,
        "event_type": False,
        "event_name": {"n": 1},
        "service_name": 1,
        "is_dev": "yes",
        "value": "high",
        "user_id": [1],
    },
}


def valid_event(topic: str, n: int, user: str = "malformed-user") -> dict:
    """A valid event of the topic (its owner `user`), the base of the shapes."""
    ids = {"user_id": user, "workflow_id": f"{user}-w{n}"}
    when = "2026-11-20T10:00:00.000Z"
    if topic == "analytics":
        return {
            "EventKey": f"{user}-k{n}",
            "UserID": user,
            "WorkflowID": f"{user}-w{n}",
            "EventType": "LOGS",
            "Data": {"count": 2},
        }
    base = {"event_id": f"{user}-e{n}", "event_time": when, **ids}
    if topic == "workflows":
        return {**base, "event_type": "workflow", "event_name": "created", "kind": "HEARTBEAT"}
    if topic == "jobs":
        return {**base, "event_type": "job", "event_name": "created", "job_id": f"{user}-j{n}", "status": "PENDING"}
    if topic == "job_logs":
        return {**base, "event_type": "job_log", "event_name": "created", "job_id": f"{user}-j{n}", "count": 3}
    return {**base, "event_type": "behavioral", "event_name": "login-start", "service_name": "cli"}


@dataclass(frozen=True)
class Shape:
    name: str
    payload: bytes


def _dumps(event: dict) -> bytes:
    return json.dumps(event).encode()


def shapes(topic: str) -> list[Shape]:
    """At least 30 malformed messages for one topic; none of them may count."""
    good = _dumps(valid_event(topic, 0))
    missing_envelope = {k: v for k, v in valid_event(topic, 1).items() if k not in ("event_id", "UserID")}
    deep = b'{"event_id": ' + b'{"a": ' * 2000 + b"1" + b"}" * 2000 + b"}"
    out = [
        Shape("empty", b""),
        Shape("whitespace", b"  \n\t "),
        Shape("truncated object", good[: len(good) // 2]),
        Shape("truncated after a key", b'{"event_id": "x1", "event_type": "job"'),
        Shape("lone brace", b"{"),
        Shape("not json", b"not json at all"),
        Shape("array of numbers", b"[1, 2, 3]"),
        Shape("empty array", b"[]"),
        Shape("array holding a valid event", b"[" + good + b"]"),
        Shape("bare string", b'"a bare string"'),
        Shape("bare number", b"42"),
        Shape("bare float", b"-1.5e3"),
        Shape("null", b"null"),
        Shape("true", b"true"),
        Shape("invalid UTF-8", b"\xff\xfe\xfd"),
        Shape("invalid UTF-8 in a string", good.replace(b'"malformed-user"', b'"malformed-\xc3\x28user"', 1)),
        Shape("NUL byte alone", b"\x00"),
        Shape("NUL byte after the object", good + b"\x00"),
        Shape("NUL byte inside a string", good.replace(b"malformed-user", b"malformed\x00user", 1)),
        Shape("newline inside a string", good.replace(b"malformed-user", b"malformed\nuser", 1)),
        Shape("two events on two lines", good + b"\n" + _dumps(valid_event(topic, 2))),
        Shape("two objects back to back", good + _dumps(valid_event(topic, 3))),
        Shape("trailing garbage", good + b" trailing"),
        Shape("2 MiB blob", b'{"padding": "' + b"x" * (2 << 20) + b'"}'),
        Shape("deep nesting", deep),
        Shape("duplicate keys", good[:-1] + b", " + good[1:-1] + b"}"),
        Shape("number beyond double", good[:-1] + b', "huge": 1e400}'),
        Shape("lone surrogate", good.replace(b"malformed-user", b"malformed\\ud800user", 1)),
        Shape("unknown escape in a string", good.replace(b"malformed-user", b"malformed\\-user", 1)),
        Shape("escape with non-hex digits", good.replace(b"malformed-user", b"malformed\\u12user", 1)),
        Shape("escape cut short", good.replace(b'", ', b'\\u12", ', 1)),
        Shape("single quotes", good.replace(b'"', b"'")),
        Shape("comment", b"/* c */" + good),
        Shape("NaN", good[:-1] + b', "x": NaN}'),
        Shape("UTF-16", json.dumps(valid_event(topic, 4)).encode("utf-16")),
        Shape("envelope missing", _dumps(missing_envelope)),
        Shape("empty object", b"{}"),
    ]
    for field, wrong in WRONG_TYPES[topic].items():
        out.append(Shape(f"wrong type: {field}", _dumps({**valid_event(topic, 5), field: wrong})))
    return out


# Shapes that are valid batches for the HTTP intake, whose body is JSON lines: nothing, blank
# lines, two events on a line or on two lines. ClickHouse's JSONEachRow reader also takes a raw NUL
# or line break inside a string (as if escaped), reads an unknown escape as the character escaped
# (`\-` as `-`) and `\u` followed by four characters that are not all hex digits as some code
# point, and skips fields that are not the topic's unread (a number beyond double there); telemetry
# arrives whole (JSONAsString) and its rules read the text, so those five are refused there. Over
# Kafka each of these is one message that is not one JSON object of the topic, and a dead letter.
HTTP_ACCEPTS = {"empty", "whitespace", "two events on two lines", "two objects back to back"}
HTTP_ACCEPTS_TYPED = {
    "NUL byte inside a string",
    "newline inside a string",
    "unknown escape in a string",
    "escape with non-hex digits",
    "number beyond double",
}


def http_accepts(topic: str, shape: Shape) -> bool:
    return shape.name in HTTP_ACCEPTS or (topic != "telemetry" and shape.name in HTTP_ACCEPTS_TYPED)


# -- random damage (tests/test_bridge_fuzz.py, tests/test_intake_fuzz.py) ---------------------------

LOG_RETENTION = timedelta(hours=720)  # dbt var log_retention_hours
ODD_VALUES = [
    None, True, 0, -1, 2**63, 2**64 + 5, 1e308, -0.0, "", " ", "x" * 5000, "\u0000", "\ud7ff", "😀", "\\", '"',
    [], {}, [1, "a"], {"a": {"b": None}}, "2026-13-40T25:61:61Z", "2026-11-20T10:00:00Z",
    "2026-11-20T10:00:00.123456789+05:30", "1970-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2026-11-20 10:00:00",
    "completed", "failed", "cancelled", "COMPLETED", "running", 12345678901234567890123,
]  # fmt: skip


def damaged(event: dict, rng: random.Random) -> bytes:
    """The event's JSON with one kind of damage: a field dropped, changed or added, the bytes cut or
    flipped, a duplicate key, something after the object, another JSON value, or several fields changed."""
    event, names, kind = dict(event), list(event), rng.randrange(9)
    if kind == 0:
        del event[rng.choice(names)]
    elif kind == 1:
        event[rng.choice(names)] = rng.choice(ODD_VALUES)
    elif kind == 2:
        event[rng.choice(["extra", "nested", "_offset", "message", "sequence", "count"])] = rng.choice(ODD_VALUES)
    elif kind == 3:
        raw = json.dumps(event).encode()
        return raw[: rng.randrange(len(raw))]
    elif kind == 4:
        raw = bytearray(json.dumps(event).encode())
        raw[rng.randrange(len(raw))] = rng.choice([0x80, 0xFF, 0xC3, 0x00, 0x0A, 0x22, 0x5C])
        return bytes(raw)
    elif kind == 5:
        again = json.dumps({rng.choice(names): rng.choice(ODD_VALUES)})
        return (json.dumps(event)[:-1] + ", " + again[1:]).encode()
    elif kind == 6:
        return json.dumps(event, ensure_ascii=False).encode() + rng.choice([b" ", b"\n", b"\r\n", b"{}", b"[]", b"\t"])
    elif kind == 7:
        return rng.choice([b"", b"null", b"[]", b'"s"', b"1", b"{}", json.dumps([event]).encode()])
    else:
        for name in names:
            if rng.random() < 0.15:
                event[name] = rng.choice(ODD_VALUES)
    return json.dumps(event).encode()


def as_event(payload: bytes) -> dict | None:
    try:
        event = json.loads(payload)
    except ValueError:
        return None
    return event if isinstance(event, dict) else None


def past_retention(event: dict) -> bool:
    try:
        when = datetime.fromisoformat(event["event_time"])
    except (KeyError, TypeError, ValueError):
        return False
    if when.tzinfo is None:
        return False
    return when < datetime.now(UTC) - LOG_RETENTION
