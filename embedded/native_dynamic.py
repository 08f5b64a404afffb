"""Dynamic and JSON columns in Native: a structure in the prefix says what the data holds.

Dynamic's prefix starts with a UInt64 structure version:

  * V1 (1), what every revision below 54473 gets (and chDB writes): a legacy VarUInt count, the
    VarUInt count of types and their names, then the prefix of ``Variant(<types>, SharedVariant)``
    (variants sorted by name; SharedVariant holds values of other types as strings). The data is
    that Variant's.
  * V2 (2), from revision 54473: the same without the legacy count.
  * FLATTENED (3), with ``output_format_native_use_flattened_dynamic_and_json_serialization``:
    the types and their prefixes; the data is one index per row (the smallest unsigned type that
    holds the count of types + 1, which is NULL), then each type's rows.

JSON's (the Object serialization's) prefix starts with its own UInt64 version:

  * V1 (0) and V2 (2) as above: the VarUInt count and names of dynamic paths; the prefixes of the
    typed paths (sorted by path), then of one Dynamic per dynamic path, then of the shared data
    (``Map(String, String)``); the data follows in the same order.
  * STRING (1), with ``output_format_native_write_json_as_string``: the data is a String column.
  * FLATTENED (3): the paths' names, the typed paths' prefixes and one (flattened) Dynamic prefix
    per path; the data is the typed paths', then each path's, with no shared data.
"""

from __future__ import annotations

import array
import struct
import sys

from embedded.native_columns import Codec, Cursor, Variant, codec_for, codec_for_name, varint_bytes
from embedded.native_types import DataType, TypeNotFramable

_UINT64 = struct.Struct("<Q")
SHARED_VARIANT = b"SharedVariant"
DYNAMIC_V1, DYNAMIC_V2, DYNAMIC_FLATTENED = 1, 2, 3
OBJECT_V1, OBJECT_STRING, OBJECT_V2, OBJECT_FLATTENED = 0, 1, 2, 3
_INDEX_TYPECODES = [(1 << 8, "B"), (1 << 16, "H"), (1 << 32, "I"), (1 << 64, "Q")]


def structure_count(cur: Cursor, start: int, version: int, v1: int, v2: int) -> int:
    """The count after a V1 or V2 structure version, rewriting the version for the client's revision."""
    if version == v1:
        cur.varint()  # V1's legacy count (max_dynamic_types / max_dynamic_paths)
    count_start = cur.pos
    count = cur.varint()
    target = v2 if cur.v2 else v1
    if target != version:
        legacy = varint_bytes(count) if target == v1 else b""
        cur.edits.append((start, count_start, _UINT64.pack(target) + legacy))
    return count


def _type_name(cur: Cursor) -> str:
    raw = cur.string()
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise TypeNotFramable(f"cannot read the type name {bytes(raw)!r}") from None


_VARIANTS: dict[tuple[bytes, ...], Variant] = {}


def _variant_of(names: tuple[bytes, ...]) -> Variant:
    variant = _VARIANTS.get(names)
    if variant is None:
        try:
            codecs = [codec_for_name(name.decode()) for name in names]
        except UnicodeDecodeError:
            raise TypeNotFramable("a Dynamic type name that is not UTF-8") from None
        if len(_VARIANTS) > 10_000:
            _VARIANTS.clear()
        variant = _VARIANTS[names] = Variant(codecs)
    return variant


class _Flattened(Codec):
    """A flattened Dynamic's data: an index per row, then each type's rows."""

    def __init__(self, codecs: list[Codec]):
        self.codecs = codecs
        self.typecode = next(code for limit, code in _INDEX_TYPECODES if len(codecs) + 1 <= limit)

    def data(self, cur, rows, state):
        indexes = array.array(self.typecode)
        end = cur.pos + rows * indexes.itemsize
        indexes.frombytes(cur.buf[cur.pos : end])
        if sys.byteorder == "big":
            indexes.byteswap()
        cur.pos = end
        for index, (codec, codec_state) in enumerate(zip(self.codecs, state, strict=True)):
            count = indexes.count(index)
            if count:
                codec.data(cur, count, codec_state)


class Dynamic(Codec):
    strings = True
    low_cardinality = True  # the types of its values are only known block by block

    def prefix(self, cur):
        start = cur.pos
        version = cur.uint64()
        if version in (DYNAMIC_V1, DYNAMIC_V2):
            count = structure_count(cur, start, version, DYNAMIC_V1, DYNAMIC_V2)
            names = [bytes(cur.string()) for _ in range(count)]
            variant = _variant_of(tuple(sorted([*names, SHARED_VARIANT])))
            return variant, variant.prefix(cur)
        if version == DYNAMIC_FLATTENED:
            codecs = [codec_for_name(_type_name(cur)) for _ in range(cur.varint())]
            return _Flattened(codecs), [codec.prefix(cur) for codec in codecs]
        raise TypeNotFramable(f"Dynamic structure version {version} in chDB's Native output")

    def data(self, cur, rows, state):
        layout, layout_state = state
        layout.data(cur, rows, layout_state)


class Object(Codec):
    """The JSON type: typed paths, dynamic paths (each a Dynamic) and the shared data."""

    strings = True
    low_cardinality = True

    def __init__(self, node: DataType):
        typed = sorted(zip(node.names, node.args, strict=True), key=lambda path: path[0].encode())
        self.typed = [codec_for(path_type) for _, path_type in typed]
        self.dynamic = Dynamic()
        self.shared = codec_for_name("Map(String, String)")
        self.string = codec_for_name("String")

    def prefix(self, cur):
        start = cur.pos
        version = cur.uint64()
        if version == OBJECT_STRING:
            return None
        if version in (OBJECT_V1, OBJECT_V2):
            count = structure_count(cur, start, version, OBJECT_V1, OBJECT_V2)
        elif version == OBJECT_FLATTENED:
            count = cur.varint()
        else:
            raise TypeNotFramable(f"JSON serialization version {version} in chDB's Native output")
        for _ in range(count):
            cur.skip_string()  # the path
        typed = [codec.prefix(cur) for codec in self.typed]
        paths = [self.dynamic.prefix(cur) for _ in range(count)]
        shared = None if version == OBJECT_FLATTENED else self.shared.prefix(cur)  # a Map: no bytes
        return typed, paths, shared

    def data(self, cur, rows, state):
        if state is None:
            self.string.data(cur, rows, None)
            return
        typed, paths, shared = state
        for codec, codec_state in zip(self.typed, typed, strict=True):
            codec.data(cur, rows, codec_state)
        for path_state in paths:
            self.dynamic.data(cur, rows, path_state)
        if shared is not None:
            self.shared.data(cur, rows, shared)
