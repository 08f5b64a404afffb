"""ClickHouse's `framing_output_format=EventStream`: an answer as server-sent events.

ClickHouse's /play page asks for it with every query (`embedded/web_ui.py`): the output of the
statement's format travels in `data` events, each chunk base64-encoded into one `data:` field
(`payload=base64` in the Content-Type), the figures of the query in a `progress` event, and an
error, before or after the first chunk, as the last event, `exception` with `{"exception": text}`.
Every event ends with a blank line, so a stream cut short is told from one that ended.
"""

from __future__ import annotations

import base64
import json

from core.errors import Code
from embedded.errors import ClickHouseError

SETTING = "framing_output_format"
EVENT_STREAM = "EventStream"
CONTENT_TYPE = "text/event-stream; charset=UTF-8; payload=base64"


def requested(value: str | None) -> str | None:
    """The framing a request's `framing_output_format` asks for: EVENT_STREAM or None (unframed)."""
    if value is None or value.strip("'").lower() in ("", "none"):
        return None
    if value.strip("'").lower() == EVENT_STREAM.lower():
        return EVENT_STREAM
    raise ClickHouseError.of(
        Code.NOT_IMPLEMENTED,
        f"framing_output_format '{value}' is not supported by the embedded server: EventStream or None",
    )


def data(chunk: bytes) -> bytes:
    return b"event: data\ndata: " + base64.b64encode(chunk) + b"\n\n" if chunk else b""


def progress(summary_json: str) -> bytes:
    return b"event: progress\ndata: " + summary_json.encode() + b"\n\n"


def exception(message: str) -> bytes:
    return b"event: exception\ndata: " + json.dumps({"exception": message}).encode() + b"\n\n"
