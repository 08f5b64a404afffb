"""Native output at a client's protocol revision (``client_protocol_version``), from chDB's revision-0 blocks.

A server's HTTP interface writes the Native format at the revision the client names (ClickHouse's
NativeWriter): clickhouse-connect names 54405, clickhouse-go its TCP revision (54460). chDB has no
setting for the revision and always writes revision 0. What the revision changes, for what chDB
writes (ClickHouse 26.9, whose own protocol revision is 54492):

  * > 0: every block starts with its BlockInfo (is_overflows = 0, bucket_num = -1; from 54480 also
    an empty out_of_order_buckets list);
  * >= 54454: every column's type is followed by a "has custom serialization" byte (0 here: chDB's
    blocks hold no sparse or replicated columns, and the default serialization is always valid);
  * >= 54473: Dynamic and JSON structures are written in their V2 version instead of V1
    (native_dynamic.py);
  * between 1 and 54404, LowCardinality would be sent as its plain type; >= 54492, String data
    goes in a separate size stream; >= 54452, versioned aggregate functions change their states.
    Those columns are refused (NOT_IMPLEMENTED, naming the column and the reason), and so are
    types whose bytes cannot be walked (most AggregateFunction states: native_states.py).
  * >= 54337, a top-level ``DateTime('zone')`` keeps its zone in the type name; chDB, at revision
    0, has already dropped it, as a server does for revision 0 (the instant is the same).

Everything else is the same bytes. The block boundaries alone would do below 54454 (only BlockInfo
changes there), but finding them in a chunk means knowing each column's length, so every column is
walked by its type (native_columns.py): a chunk is rewritten only once its walk lands exactly on its
end, and a column that cannot be walked is refused rather than sent wrongly framed.
"""

from __future__ import annotations

import struct

from core.errors import Code
from embedded.errors import NOT_IMPLEMENTED, ClickHouseError
from embedded.native_columns import Codec, Cursor, codec_for
from embedded.native_types import TypeNotFramable, parse_type

LOW_CARDINALITY_REVISION = 54405
CUSTOM_SERIALIZATION_REVISION = 54454
OUT_OF_ORDER_BUCKETS_REVISION = 54480
STRING_SIZE_STREAM_REVISION = 54492
LOGICAL_ERROR = Code.LOGICAL_ERROR

# field 1 (is_overflows) = 0, field 2 (bucket_num) = -1, [field 3 (out_of_order_buckets) = []], field 0: end.
_BLOCK_INFO = b"\x01\x00\x02\xff\xff\xff\xff\x00"
_BLOCK_INFO_WITH_BUCKETS = b"\x01\x00\x02\xff\xff\xff\xff\x03\x00\x00"
_FLAG = b"\x00"
_DEFAULT_ADVICE = "cast the column (e.g. to String) or read it in another format"


class NativeRevision:
    """Rewrites chDB's Native chunks (revision 0) for a client at ``revision``."""

    def __init__(self, revision: int):
        self.revision = revision
        self.block_info = _BLOCK_INFO_WITH_BUCKETS if revision >= OUT_OF_ORDER_BUCKETS_REVISION else _BLOCK_INFO
        self.custom = revision >= CUSTOM_SERIALIZATION_REVISION
        self._codecs: dict[bytes, Codec] = {}

    def convert(self, chunk: bytes) -> bytes:
        if self.revision <= 0 or not chunk:
            return chunk
        cur = Cursor(chunk, self.revision)
        edits = cur.edits
        end = len(chunk)
        column = type_name = b"?"
        try:
            while cur.pos < end:
                edits.append((cur.pos, cur.pos, self.block_info))
                columns = cur.varint()
                rows = cur.varint()
                for _ in range(columns):
                    column = cur.string()
                    type_name = cur.string()
                    if self.custom:
                        edits.append((cur.pos, cur.pos, _FLAG))
                    if rows:
                        codec = self._codec(type_name, column)
                        codec.data(cur, rows, codec.prefix(cur))
        except TypeNotFramable as error:
            raise self._refusal(column, type_name, error.message, error.advice) from None
        except (IndexError, struct.error):
            cur.pos = end + 1  # ran past the chunk: reported below
        if cur.pos != end:
            raise ClickHouseError.of(
                LOGICAL_ERROR,
                f"Native output at client_protocol_version {self.revision}: the walk of chDB's block "
                f"did not end with the block (at or after column {_text(column)}); nothing of it was sent",
            )
        return _apply(chunk, edits)

    def _codec(self, raw: bytes, column: bytes) -> Codec:
        codec = self._codecs.get(raw)
        if codec is not None:
            return codec
        text = _printable(raw)
        if text is None:
            raise TypeNotFramable(
                "its type is not a type name (types written in binary, with "
                "output_format_native_encode_types_in_binary_format, are not framed)",
                "leave that setting off",
            )
        codec = codec_for(parse_type(text))
        if codec.low_cardinality and self.revision < LOW_CARDINALITY_REVISION:
            raise TypeNotFramable(
                f"below revision {LOW_CARDINALITY_REVISION} a server sends LowCardinality columns as their "
                "plain type (and JSON and Dynamic may hold LowCardinality values)",
                "cast the column to its plain type",
            )
        if codec.strings and self.revision >= STRING_SIZE_STREAM_REVISION:
            raise TypeNotFramable(
                f"from revision {STRING_SIZE_STREAM_REVISION} String data travels with a separate size stream, "
                "which the embedded ClickHouse does not write",
                f"use client_protocol_version {STRING_SIZE_STREAM_REVISION - 1} or lower",
            )
        self._codecs[bytes(raw)] = codec
        return codec

    def _refusal(self, column: bytes, type_name: bytes, reason: str, advice: str | None) -> ClickHouseError:
        text = _printable(type_name)
        of_type = f" of type {text}" if text else ""
        return ClickHouseError.of(
            NOT_IMPLEMENTED,
            f"Native output at client_protocol_version {self.revision} is not supported by the embedded "
            f"ClickHouse for column {_text(column)}{of_type}: {reason}; {advice or _DEFAULT_ADVICE}",
        )


def _printable(raw: bytes) -> str | None:
    """The text of a type name, or None when it is not one (no control characters, UTF-8)."""
    try:
        text = bytes(raw).decode()
    except UnicodeDecodeError:
        return None
    return text if text.isprintable() else None


def _text(raw: bytes) -> str:
    return bytes(raw).decode("utf-8", "replace")


def _apply(chunk: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    view = memoryview(chunk)
    out: list[bytes | memoryview] = []
    last = 0
    for start, stop, replacement in edits:
        out.append(view[last:start])
        out.append(replacement)
        last = stop
    out.append(view[last:])
    return b"".join(out)
