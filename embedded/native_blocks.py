"""Native output at a client's protocol revision (``client_protocol_version``), from chDB's revision-0 blocks.

A server's HTTP interface writes the Native format at the revision the client names; clickhouse-go
names its TCP revision (54460) and reads accordingly. chDB has no setting for the revision (its
format settings carry none) and always writes revision 0. The two differ, for the types chDB
writes, only in framing:

  * revision > 0 starts every block with its BlockInfo (is_overflows = false, bucket_num = -1);
  * revision >= 54454 follows every column's type with a "has custom serialization" byte (0 here:
    at revision 0 chDB never writes sparse or other custom serializations).

Inserting those bytes needs every column's length, so this module walks the column data by type.
Types whose layout it does not know (JSON, Dynamic, Variant, AggregateFunction...) are refused
with a clear error rather than sent wrongly framed.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from embedded.errors import NOT_IMPLEMENTED, ClickHouseError

CUSTOM_SERIALIZATION_REVISION = 54454
# field 1 (is_overflows) = 0, field 2 (bucket_num) = -1, field 0: end.
_BLOCK_INFO = b"\x01\x00\x02\xff\xff\xff\xff\x00"
_UINT64 = struct.Struct("<Q")

_FIXED_SIZES = {
    **dict.fromkeys(("UInt8", "Int8", "Bool", "Enum8", "Nothing"), 1),
    **dict.fromkeys(("UInt16", "Int16", "Date", "Enum16", "BFloat16"), 2),
    **dict.fromkeys(("UInt32", "Int32", "Float32", "Date32", "DateTime", "IPv4", "Decimal32", "Time"), 4),
    **dict.fromkeys(("UInt64", "Int64", "Float64", "DateTime64", "Decimal64", "Time64"), 8),
    **dict.fromkeys(("UInt128", "Int128", "UUID", "IPv6", "Decimal128"), 16),
    **dict.fromkeys(("UInt256", "Int256", "Decimal256"), 32),
}
_GEO = {
    "Point": "Tuple(Float64, Float64)",
    "Ring": "Array(Point)",
    "LineString": "Array(Point)",
    "MultiLineString": "Array(LineString)",
    "Polygon": "Array(Ring)",
    "MultiPolygon": "Array(Polygon)",
}


@dataclass(frozen=True)
class DataType:
    name: str
    args: tuple[DataType | str, ...] = ()


def parse_type(text: str) -> DataType:
    node, end = _parse(text.strip(), 0)
    return node


def _parse(text: str, pos: int) -> tuple[DataType, int]:
    start = pos
    while pos < len(text) and (text[pos].isalnum() or text[pos] == "_"):
        pos += 1
    name = text[start:pos]
    if name in _GEO:
        return parse_type(_GEO[name]), pos
    if pos >= len(text) or text[pos] != "(":
        return DataType(name), pos
    args: list[DataType | str] = []
    pos += 1
    while True:
        while text[pos] == " ":
            pos += 1
        if text[pos] in "'\"-0123456789" or name in ("Enum8", "Enum16", "DateTime", "DateTime64", "FixedString"):
            arg_start = pos
            pos = _skip_literal_argument(text, pos)
            args.append(text[arg_start:pos].strip())
        else:
            # A nested type, possibly named (Tuple(a UInt8, `b c` String), Nested(...)).
            if name in ("Tuple", "Nested"):
                pos = _skip_element_name(text, pos)
            if name.endswith("AggregateFunction") and not args:
                arg_start = pos
                pos = _skip_literal_argument(text, pos)
                args.append(text[arg_start:pos].strip())
            else:
                node, pos = _parse(text, pos)
                args.append(node)
        while text[pos] == " ":
            pos += 1
        if text[pos] == ")":
            return DataType(name, tuple(args)), pos + 1
        pos += 1  # the comma


def _skip_element_name(text: str, pos: int) -> int:
    """Past ``name `` in a named Tuple element (a plain or back-quoted name), or ``pos`` if unnamed."""
    end = pos
    if text[pos] in '`"':
        end = pos + 1
        while text[end] != text[pos]:
            end += 2 if text[end] == "\\" else 1
        end += 1
    else:
        while end < len(text) and (text[end].isalnum() or text[end] == "_"):
            end += 1
    return end + 1 if end < len(text) and text[end] == " " else pos


def _skip_literal_argument(text: str, pos: int) -> int:
    """To the comma or closing parenthesis ending a literal argument, quotes and nesting respected."""
    depth = 0
    while pos < len(text):
        char = text[pos]
        if char in "'\"`":
            pos += 1
            while text[pos] != char:
                pos += 2 if text[pos] == "\\" else 1
        elif char == "(":
            depth += 1
        elif char == ")":
            if depth == 0:
                return pos
            depth -= 1
        elif char == "," and depth == 0:
            return pos
        pos += 1
    return pos


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _unwrap(node: DataType) -> DataType:
    if node.name == "SimpleAggregateFunction":
        return node.args[1]
    return node


def _skip_prefix(node: DataType, buf: bytes, pos: int) -> int:
    node = _unwrap(node)
    if node.name == "LowCardinality":
        return pos + 8  # the shared-dictionary version
    if node.name in ("Array", "Nullable"):
        return _skip_prefix(node.args[0], buf, pos)
    if node.name in ("Tuple", "Map", "Nested"):
        for arg in node.args:
            pos = _skip_prefix(arg, buf, pos)
    return pos


def _skip_data(node: DataType, buf: bytes, pos: int, rows: int) -> int:
    node = _unwrap(node)
    name = node.name
    size = _FIXED_SIZES.get(name)
    if size is not None:
        return pos + size * rows
    if name == "String":
        for _ in range(rows):
            length = buf[pos]
            if length < 0x80:
                pos += 1 + length
            else:
                length, pos = _varint(buf, pos)
                pos += length
        return pos
    if name == "FixedString":
        return pos + int(node.args[0]) * rows
    if name == "Decimal":
        precision = int(node.args[0])
        width = 4 if precision <= 9 else 8 if precision <= 18 else 16 if precision <= 38 else 32
        return pos + width * rows
    if name.startswith("Interval"):
        return pos + 8 * rows
    if name == "Nullable":
        return _skip_data(node.args[0], buf, pos + rows, rows)
    if name in ("Array", "Map"):
        total = _UINT64.unpack_from(buf, pos + 8 * (rows - 1))[0] if rows else 0
        pos += 8 * rows
        elements = node.args if name == "Map" else node.args[:1]
        for element in elements:
            pos = _skip_data(element, buf, pos, total)
        return pos
    if name in ("Tuple", "Nested"):
        for element in node.args:
            pos = _skip_data(element, buf, pos, rows)
        return pos
    if name == "LowCardinality":
        return _skip_low_cardinality(node.args[0], buf, pos, rows)
    raise ClickHouseError.of(
        NOT_IMPLEMENTED,
        f"Native output at a client_protocol_version for columns of type {name} is not supported by the "
        "embedded ClickHouse; cast the column (e.g. to String) or read it in another format",
    )


def _skip_low_cardinality(inner: DataType, buf: bytes, pos: int, rows: int) -> int:
    dictionary_type = inner.args[0] if inner.name == "Nullable" else inner
    while rows > 0:
        flags = _UINT64.unpack_from(buf, pos)[0]
        pos += 8
        if flags & (1 << 9):  # HasAdditionalKeysBit: a dictionary follows
            keys = _UINT64.unpack_from(buf, pos)[0]
            pos = _skip_data(dictionary_type, buf, pos + 8, keys)
        count = _UINT64.unpack_from(buf, pos)[0]
        pos += 8 + count * (1 << (flags & 0xFF))
        rows -= count
    return pos


class NativeRevision:
    """Rewrites chDB's Native chunks (revision 0) for a client at ``revision``."""

    def __init__(self, revision: int):
        self.revision = revision
        self._types: dict[bytes, DataType] = {}

    def convert(self, chunk: bytes) -> bytes:
        if self.revision <= 0 or not chunk:
            return chunk
        custom = self.revision >= CUSTOM_SERIALIZATION_REVISION
        out: list[bytes | memoryview] = []
        view = memoryview(chunk)
        pos = 0
        while pos < len(chunk):
            out.append(_BLOCK_INFO)
            start = pos
            columns, pos = _varint(chunk, pos)
            rows, pos = _varint(chunk, pos)
            out.append(view[start:pos])
            for _ in range(columns):
                start = pos
                length, pos = _varint(chunk, pos)
                pos += length
                length, type_start = _varint(chunk, pos)
                pos = type_start + length
                out.append(view[start:pos])
                if custom:
                    out.append(b"\x00")
                data_start = pos
                if rows:
                    node = self._type(chunk[type_start:pos])
                    pos = _skip_data(node, chunk, _skip_prefix(node, chunk, pos), rows)
                out.append(view[data_start:pos])
        return b"".join(out)

    def _type(self, raw: bytes) -> DataType:
        node = self._types.get(raw)
        if node is None:
            node = self._types[raw] = parse_type(raw.decode())
        return node
