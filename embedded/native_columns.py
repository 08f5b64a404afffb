"""Walking a Native column's bytes by its type: where its serialization prefix and its data end.

A column in a Native block is its type's serialization prefix (every nested stateful type's, in
type order) followed by its data (likewise). The codec of each type family knows both layouts, as
ClickHouse 26.9's serializations write them with ``native_format`` set and no statistics:

  * fixed-width types, String, FixedString, Nullable (null map, then the values), Array and Map
    (UInt64 offsets, then the elements), Tuple (each element), LowCardinality (UInt64 version in
    the prefix; per block: flags, dictionary, UInt64 count, keys);
  * Variant: a UInt64 discriminators mode in the prefix (0, one byte per row; 255 is NULL), each
    variant's prefix; then the discriminators and each variant's rows, in the type name's order;
  * Dynamic and JSON (native_dynamic.py): a structure in the prefix that says what the data holds.

A codec also rewrites what differs between the revision chDB writes (0) and the client's: only the
structure versions of Dynamic and JSON do (``Cursor.edits``).
"""

from __future__ import annotations

import struct

from embedded.native_types import DataType, TypeNotFramable, parse_type

V2_DYNAMIC_AND_JSON_REVISION = 54473
_UINT64 = struct.Struct("<Q")

FIXED_SIZES = {
    **dict.fromkeys(("UInt8", "Int8", "Bool", "Enum8", "Nothing"), 1),
    **dict.fromkeys(("UInt16", "Int16", "Date", "Enum16", "BFloat16"), 2),
    **dict.fromkeys(("UInt32", "Int32", "Float32", "Date32", "DateTime", "DateTime32", "IPv4", "Decimal32", "Time"), 4),
    **dict.fromkeys(("UInt64", "Int64", "Float64", "DateTime64", "Decimal64", "Time64"), 8),
    **dict.fromkeys(("UInt128", "Int128", "UUID", "IPv6", "Decimal128"), 16),
    **dict.fromkeys(("UInt256", "Int256", "Decimal256"), 32),
}
_QBIT_ELEMENT_BITS = {"BFloat16": 16, "Float32": 32, "Float64": 64}
_POINT = "Tuple(Float64, Float64)"
ALIASES = {
    "Point": _POINT,
    "Ring": f"Array({_POINT})",
    "LineString": f"Array({_POINT})",
    "MultiPoint": f"Array({_POINT})",
    "MultiLineString": f"Array(Array({_POINT}))",
    "Polygon": f"Array(Array({_POINT}))",
    "MultiPolygon": f"Array(Array(Array({_POINT})))",
    # Geometry's variants keep their declared order (MultiPoint was added last), not the sorted one.
    "Geometry": "Variant(LineString, MultiLineString, MultiPolygon, Point, Polygon, Ring, MultiPoint)",
}


class Cursor:
    """A position in a chunk of chDB's Native output, and the byte rewrites the walk decided."""

    __slots__ = ("buf", "pos", "edits", "v2")

    def __init__(self, buf: bytes, revision: int):
        self.buf = buf
        self.pos = 0
        self.edits: list[tuple[int, int, bytes]] = []  # (start, end, replacement), in increasing order
        self.v2 = revision >= V2_DYNAMIC_AND_JSON_REVISION

    def varint(self) -> int:
        buf, pos = self.buf, self.pos
        result = shift = 0
        while True:
            byte = buf[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            if byte < 0x80:
                self.pos = pos
                return result
            shift += 7

    def uint64(self) -> int:
        value = _UINT64.unpack_from(self.buf, self.pos)[0]
        self.pos += 8
        return value

    def skip_string(self) -> None:
        length = self.varint()
        self.pos += length

    def string(self) -> bytes:
        length = self.varint()
        if self.pos + length > len(self.buf):
            raise IndexError("a string runs past the chunk")
        self.pos += length
        return self.buf[self.pos - length : self.pos]


def varint_bytes(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


class Codec:
    """How one type's prefix and data lie in a Native column."""

    strings = False  # holds String-serialized data somewhere inside
    low_cardinality = False  # holds (or, for Dynamic and JSON, may hold) LowCardinality data

    def prefix(self, cur: Cursor):
        """Walk past this type's serialization prefix; returns what the data walk needs."""
        return None

    def data(self, cur: Cursor, rows: int, state) -> None:
        raise NotImplementedError


class Fixed(Codec):
    def __init__(self, size: int):
        self.size = size

    def data(self, cur, rows, state):
        cur.pos += self.size * rows


class String(Codec):
    strings = True

    def data(self, cur, rows, state):
        buf, pos = cur.buf, cur.pos
        for _ in range(rows):
            length = buf[pos]
            if length < 0x80:
                pos += 1 + length
            else:
                cur.pos = pos
                length = cur.varint()
                pos = cur.pos + length
        cur.pos = pos


class Nullable(Codec):
    def __init__(self, inner: Codec):
        self.inner = inner
        self.strings, self.low_cardinality = inner.strings, inner.low_cardinality

    def prefix(self, cur):
        return self.inner.prefix(cur)

    def data(self, cur, rows, state):
        cur.pos += rows  # the null map
        self.inner.data(cur, rows, state)


class Array(Codec):
    def __init__(self, inner: Codec):
        self.inner = inner
        self.strings, self.low_cardinality = inner.strings, inner.low_cardinality

    def prefix(self, cur):
        return self.inner.prefix(cur)

    def data(self, cur, rows, state):
        if rows:
            total = _UINT64.unpack_from(cur.buf, cur.pos + 8 * (rows - 1))[0]
            cur.pos += 8 * rows
            if total:
                self.inner.data(cur, total, state)


class Tuple(Codec):
    def __init__(self, elements: list[Codec]):
        self.elements = elements
        self.strings = any(element.strings for element in elements)
        self.low_cardinality = any(element.low_cardinality for element in elements)

    def prefix(self, cur):
        return [element.prefix(cur) for element in self.elements]

    def data(self, cur, rows, state):
        for element, element_state in zip(self.elements, state, strict=True):
            element.data(cur, rows, element_state)


class LowCardinality(Codec):
    low_cardinality = True

    def __init__(self, dictionary: Codec):
        self.dictionary = dictionary  # the dictionary's type: the inner type without Nullable
        self.strings = dictionary.strings

    def prefix(self, cur):
        if cur.uint64() != 1:
            raise TypeNotFramable("unknown LowCardinality serialization version in chDB's Native output")

    def data(self, cur, rows, state):
        while rows > 0:
            flags = cur.uint64()
            if flags & (1 << 9):  # HasAdditionalKeysBit: a dictionary follows
                self.dictionary.data(cur, cur.uint64(), None)
            count = cur.uint64()
            if count == 0:
                raise TypeNotFramable("empty LowCardinality keys in chDB's Native output")
            cur.pos += count << (flags & 0xFF)
            rows -= count


class Variant(Codec):
    def __init__(self, variants: list[Codec]):
        if len(variants) > 255:
            raise TypeNotFramable("a Variant of more than 255 types")
        self.variants = variants
        self.strings = any(variant.strings for variant in variants)
        self.low_cardinality = any(variant.low_cardinality for variant in variants)

    def prefix(self, cur):
        if cur.uint64() != 0:  # COMPACT discriminators are for MergeTree parts, never Native
            raise TypeNotFramable("Variant discriminators in a mode other than BASIC in chDB's Native output")
        return [variant.prefix(cur) for variant in self.variants]

    def data(self, cur, rows, state):
        discriminators = cur.buf[cur.pos : cur.pos + rows]
        cur.pos += rows
        left = rows - discriminators.count(255)  # NULL rows are in no variant
        for index, (variant, variant_state) in enumerate(zip(self.variants, state, strict=True)):
            if left == 0:
                break
            count = left if index == len(self.variants) - 1 else discriminators.count(index)
            if count:
                variant.data(cur, count, variant_state)
                left -= count


def decimal_size(precision: int) -> int:
    return 4 if precision <= 9 else 8 if precision <= 18 else 16 if precision <= 38 else 32


_CODECS: dict[DataType, Codec] = {}
_STRING = String()


def codec_for(node: DataType) -> Codec:
    codec = _CODECS.get(node)
    if codec is None:
        if len(_CODECS) > 10_000:  # Dynamic columns bring their own type names: keep the cache bounded
            _CODECS.clear()
        try:
            codec = _CODECS[node] = _build(node)
        except (ValueError, IndexError):  # a literal argument that is not what the type needs
            raise TypeNotFramable(f"cannot read the arguments of the type {node.name}") from None
    return codec


def codec_for_name(name: str) -> Codec:
    return codec_for(parse_type(name))


def _build(node: DataType) -> Codec:
    from embedded import native_dynamic, native_states  # they build on this module's codecs

    name, args = node.name, node.args
    size = FIXED_SIZES.get(name)
    if size is not None or name.startswith("Interval"):
        return Fixed(size or 8)
    if name in ALIASES:
        return codec_for_name(ALIASES[name])
    if name in ("String", "SharedVariant"):
        return _STRING
    if name == "FixedString":
        return Fixed(int(node.params[0]))
    if name == "Decimal":
        return Fixed(decimal_size(int(node.params[0])))
    if name in ("Nullable", "Array", "LowCardinality") and len(args) != 1:
        raise TypeNotFramable(f"cannot read the type {name} with these arguments")
    if name == "QBit" and args and args[0].name in _QBIT_ELEMENT_BITS:
        return Fixed(_QBIT_ELEMENT_BITS[args[0].name] * ((int(node.params[0]) + 7) // 8))
    if name == "SimpleAggregateFunction" and len(args) == 1:
        return codec_for(args[0])
    if name == "Nullable":
        return Nullable(codec_for(args[0]))
    if name == "Array":
        return Array(codec_for(args[0]))
    if name == "Tuple":  # Tuple() writes a placeholder byte per row, as Nothing does
        return Tuple([codec_for(arg) for arg in args]) if args else Fixed(1)
    if name == "Nested":
        return Array(Tuple([codec_for(arg) for arg in args]))
    if name == "Map" and len(args) == 2:
        return Array(Tuple([codec_for(args[0]), codec_for(args[1])]))
    if name == "LowCardinality":
        inner = args[0].args[0] if args[0].name == "Nullable" else args[0]
        return LowCardinality(codec_for(inner))
    if name == "Variant" and args:
        return Variant([codec_for(arg) for arg in args])
    if name == "Dynamic":
        return native_dynamic.Dynamic()
    if name == "JSON":
        return native_dynamic.Object(node)
    if name == "AggregateFunction":
        return native_states.AggregateFunction(node)
    raise TypeNotFramable(f"the layout of {name} columns is not known to it")
