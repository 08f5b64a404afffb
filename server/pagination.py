"""Page tokens: where the previous page ended, for one query only.

A token holds the last row's sort key (keyset pagination: a row added between pages is neither
skipped nor repeated because of an offset, though a row whose sort key changes between pages, a
workflow's counter, may cross the point and be) and a fingerprint of the query, so it cannot be
used with another user, job, order or filter. ListWorkflowAnalytics resumes after (sort value,
workflow id); ListJobLogs after (sequence, time in milliseconds, event key).
"""

from __future__ import annotations

import base64
import binascii
import bisect
import hashlib
import itertools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass

from server.validation import InvalidArgument

VERSION = 1
_KEY = re.compile(r"[0-9A-F]{32}")
# A page stops before its entries and its next-page token pass this many bytes: a gRPC client
# takes messages of up to 4 MiB by default (Go's and Python's), and long log lines, or ids and
# kinds as long as a producer sent them (the event contract bounds neither), would otherwise make
# a page larger. A token holds the last entry's key, so a long id makes a long token too.
PAGE_BYTES = 3 << 20


def cut(entries: list, token_after: Callable[[int], str], budget: int = PAGE_BYTES) -> tuple[int, str]:
    """How many of a page's messages, from the first, it holds, and its next-page token
    (``token_after(count)``: "" when nothing follows), within ``budget`` bytes together; at least
    one message, however large, so that a page always moves on."""
    ends = list(itertools.accumulate(entry.ByteSize() + 6 for entry in entries))  # + field tag and length
    count = max(bisect.bisect_right(ends, budget), min(len(entries), 1))
    while True:
        token = token_after(count)
        if count <= 1 or ends[count - 1] + len(token) <= budget:
            return count, token
        count -= 1


@dataclass(frozen=True)
class Position:
    """The last workflow of a ListWorkflowAnalytics page."""

    value: int
    workflow_id: str


@dataclass(frozen=True)
class LogPosition:
    """The last line of a ListJobLogs page: its place in the table's order (sequence, time, event key)."""

    sequence: int
    time_ms: int
    key: str  # the row's dedup_key as 32 upper-case hex digits


def fingerprint(*parts) -> str:
    """A query's parts, hashed; None (no filter) is not the text "None"."""
    return hashlib.sha256(json.dumps([None if part is None else str(part) for part in parts]).encode()).hexdigest()[:16]


def _seal(payload: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")


def _open(token: str, query: str, valid, resend: str) -> dict:
    try:
        payload = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        ok = isinstance(payload, dict) and payload.get("v") == VERSION and valid(payload)
    except (binascii.Error, ValueError, RecursionError):  # RecursionError: JSON nested thousands deep
        ok = False
    if not ok:
        raise InvalidArgument("page_token is not a token this service issued")
    if payload.get("q") != query:
        raise InvalidArgument(f"page_token belongs to another query: keep {resend}")
    return payload


INT64 = range(-(1 << 63), 1 << 63)
UINT64 = range(1 << 64)


def _is_int(value, within: range = INT64) -> bool:
    """An integer of the range its query parameter takes (ClickHouse would wrap one beyond it)."""
    return isinstance(value, int) and not isinstance(value, bool) and value in within


def encode(query: str, position: Position) -> str:
    return _seal({"v": VERSION, "q": query, "k": position.value, "w": position.workflow_id})


def decode(token: str, query: str) -> Position | None:
    """The position a token resumes after; None for the first page (no token)."""
    if not token:
        return None
    payload = _open(
        token,
        query,
        lambda p: _is_int(p.get("k")) and isinstance(p.get("w"), str),
        "user_id, order_by, ascending and filters",
    )
    return Position(payload["k"], payload["w"])


def encode_log(query: str, position: LogPosition) -> str:
    return _seal({"v": VERSION, "q": query, "s": position.sequence, "t": position.time_ms, "e": position.key})


def decode_log(token: str, query: str) -> LogPosition | None:
    """The line a ListJobLogs token resumes after; None for the first page (no token)."""
    if not token:
        return None
    payload = _open(
        token,
        query,
        lambda p: (
            _is_int(p.get("s"), UINT64)
            and _is_int(p.get("t"))
            and isinstance(p.get("e"), str)
            and bool(_KEY.fullmatch(p["e"]))
        ),
        "user_id, workflow_id, job_id, stream, times, contains and order",
    )
    return LogPosition(payload["s"], payload["t"], payload["e"])
