"""Page tokens of ListWorkflowAnalytics: where the previous page ended, for one query only.

A token holds the last row's sort value and workflow id (keyset pagination: a workflow that
gains jobs between pages is neither skipped nor repeated because of an offset) and a
fingerprint of the query, so it cannot be used with another user, order or filter.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass

from server.validation import InvalidArgument

VERSION = 1


@dataclass(frozen=True)
class Position:
    value: int
    workflow_id: str


def fingerprint(*parts) -> str:
    return hashlib.sha256(json.dumps([str(part) for part in parts]).encode()).hexdigest()[:16]


def encode(query: str, position: Position) -> str:
    payload = {"v": VERSION, "q": query, "k": position.value, "w": position.workflow_id}
    return base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")


def decode(token: str, query: str) -> Position | None:
    """The position a token resumes after; None for the first page (no token)."""
    if not token:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        valid = (
            isinstance(payload, dict)
            and payload.get("v") == VERSION
            and isinstance(payload.get("k"), int)
            and isinstance(payload.get("w"), str)
        )
    except (binascii.Error, ValueError):
        valid = False
    if not valid:
        raise InvalidArgument("page_token is not a token this service issued")
    if payload.get("q") != query:
        raise InvalidArgument("page_token belongs to another query: keep user_id, order_by, ascending and filters")
    return Position(payload["k"], payload["w"])
