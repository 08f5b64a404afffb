"""Native output at a client's protocol revision, byte for byte, for every type chDB writes.

The expected bytes are built without the front's walker: chDB's revision-0 answer for one column
alone, in a result of one block, is that column's name, type and data. A block at revision R is
then its BlockInfo (R > 0; with the empty out_of_order_buckets from 54480), the column and row
counts, and per column its name, type, a 0 flag byte (R >= 54454) and its data. A result of many
blocks is the blocks of its row ranges (numbers(offset, count)), one after the other.

From revision 54473 Dynamic and JSON carry their V2 structures: those are checked on bytes written
out here from ClickHouse's layout. Refusals and the front's own failure paths are at the end.
"""

from __future__ import annotations

import functools
from urllib.parse import urlencode

import pytest
import urllib3

from embedded.native_blocks import NativeRevision

HTTP = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=5, read=120))
BLOCK_INFO = b"\x01\x00\x02\xff\xff\xff\xff\x00"
BLOCK_INFO_WITH_BUCKETS = b"\x01\x00\x02\xff\xff\xff\xff\x03\x00\x00"
ONE_BLOCK = "max_block_size=1000000, max_threads=1, optimize_read_in_order=0"


def post(server, sql: str, **params):
    url = server.url + "/" + ("?" + urlencode(params) if params else "")
    return HTTP.request("POST", url, body=sql.encode())


def native(server, sql: str, **params) -> bytes:
    response = post(server, sql + " FORMAT Native", **params)
    assert response.status == 200, response.data[-600:]
    return response.data


def varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    return bytes(out + bytes([value]))


def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def read_string(buf: bytes, pos: int) -> tuple[bytes, int]:
    length, pos = read_varint(buf, pos)
    return buf[pos : pos + length], pos + length


@functools.cache
def column_alone(url: str, name: str, expression: str, source: str, settings: str) -> tuple[bytes, int, bytes]:
    """chDB's revision-0 answer for one column of a one-block result: its type, row count and data."""
    body = HTTP.request(
        "POST", url, body=f"SELECT {expression} AS `{name}` FROM {source} SETTINGS {settings} FORMAT Native".encode()
    ).data
    columns, pos = read_varint(body, 0)
    rows, pos = read_varint(body, pos)
    _, pos = read_string(body, pos)
    type_name, pos = read_string(body, pos)
    assert columns == 1 and rows > 0, body[:300]
    # The whole answer is this one block: its row count is the source's.
    count = HTTP.request("POST", url, body=f"SELECT count() FROM {source}".encode()).data
    assert int(count) == rows, (source, count, rows)
    return type_name, rows, body[pos:]


def expected_block(server, columns: dict[str, str], source: str, revision: int, settings: str = "") -> bytes:
    settings = ", ".join(part for part in (ONE_BLOCK, settings) if part)
    parts = [column_alone(server.url + "/", name, expr, source, settings) for name, expr in columns.items()]
    rows = {rows for _, rows, _ in parts}
    assert len(rows) == 1
    out = [BLOCK_INFO_WITH_BUCKETS if revision >= 54480 else BLOCK_INFO if revision > 0 else b""]
    out.append(varint(len(parts)) + varint(rows.pop()))
    for name, (type_name, _, data) in zip(columns, parts, strict=True):
        flag = b"\x00" if revision >= 54454 else b""
        out.append(varint(len(name)) + name.encode() + varint(len(type_name)) + type_name + flag + data)
    return b"".join(out)


def framed(server, columns: dict[str, str], rows: int, block: int, revision: int, settings: str = "") -> bytes:
    select = ", ".join(f"{expr} AS `{name}`" for name, expr in columns.items())
    extra = f", {settings}" if settings else ""
    return native(
        server,
        f"SELECT {select} FROM numbers({rows}) SETTINGS max_block_size={block}, max_threads=1{extra}",
        client_protocol_version=str(revision),
    )


def assert_framed_exactly(server, columns: dict[str, str], revision: int, settings: str = "") -> None:
    rows, block = 2500, 1000  # three blocks, the last one shorter
    expected = b"".join(
        expected_block(server, columns, f"numbers({start}, {min(block, rows - start)})", revision, settings)
        for start in range(0, rows, block)
    )
    assert framed(server, columns, rows, block, revision, settings) == expected


# Columns whose bytes are the same at every revision (only the framing around them changes).
SHAPES = {
    "enum_and_named_tuple": {
        "e": "CAST(number % 2 + 1, 'Enum8(\\'a, b\\' = 1, \\'c)\\' = 2)')",
        "t": "CAST((number, toString(number)), 'Tuple(id UInt64, `name x` String)')",
    },
    "times": {
        "dt": "toDateTime(number, 'Europe/Paris')",
        "dt64": "toDateTime64(number, 6, 'Asia/Tokyo')",
        "time": "toTime(number % 86400)",
        "time64": "toTime64(number % 86400, 3)",
        "interval": "toIntervalDay(number)",
    },
    "numbers": {
        "fixed": "toFixedString(toString(number % 10), 3)",
        "decimal": "toDecimal128(number, 9)",
        "bfloat": "toBFloat16(number)",
        "ip": "toIPv6('::1')",
        "qbit": "[toFloat32(number), 1, 2, 3, 4, 5, 6, 7, 8]::QBit(Float32, 9)",
    },
    "strings_and_arrays": {
        "s": "if(number % 3 = 0, NULL, repeat('é', number % 200))",
        "a": "[[if(number % 2 = 0, NULL, 'x')], []]",
        "lc": "toLowCardinality(if(number % 5 = 0, NULL, toString(number % 300)))",
        "m": "map(toString(number % 3), [number])",
    },
    "odd_ones": {
        "empty_tuple": "()",
        "empty_tuples": "[(), ()]",
        "null": "NULL",
        "nested": "CAST([(number % 256, toString(number))], 'Nested(a UInt8, b String)')",
        "simple": "CAST(number % 100, 'SimpleAggregateFunction(max, UInt64)')",
    },
    "geo": {
        "point": "(toFloat64(number), 1.5)::Point",
        "polygon": "[[(toFloat64(number), 1.5)], []]::Polygon",
        "geometry": "if(number % 2 = 0, ((toFloat64(number), 1.5)::Point)::Geometry, "
        "([(1.0, 2.0)]::MultiPoint)::Geometry)",
    },
    "variant": {
        "v": "CAST(multiIf(number % 4 = 0, NULL, number % 4 = 1, toString(number), number % 4 = 2, "
        "[number]::Variant(String, UInt64, Array(UInt64)), number::Variant(String, UInt64, Array(UInt64))), "
        "'Variant(String, UInt64, Array(UInt64))')",
        "lcv": "CAST(toLowCardinality(toString(number % 5)), 'Variant(LowCardinality(String), UInt64)')",
        "av": "[CAST(number, 'Variant(String, UInt64)'), CAST('x', 'Variant(String, UInt64)')]",
    },
    "aggregate_states": {
        "digest": "initializeAggregation('quantilesTDigestState(0.5, 0.9, 0.95, 0.99)', toFloat64(number))",
        "arg_max": "initializeAggregation('argMaxState', toLowCardinality(toString(number % 7)), "
        "(toDateTime64(number, 3, 'UTC'), toUInt8(number % 2)))",
        "count": "initializeAggregation('countState', number)",
        "count_if": "initializeAggregation('countIfState', number % 3 = 0)",
        "empty_any": "initializeAggregation('anyStateIf', number, number % 2 = 1)",
        "min_string": "initializeAggregation('minStateIf', toString(number), number % 3 = 1)",
        "max_array": "initializeAggregation('maxState', [number, 1])",
        "arg_min_tuple": "initializeAggregation('argMinState', (toString(number), [toNullable(number)]), number)",
        "any_last_array": "initializeAggregation('anyLastArrayState', [number, number + 1])",
    },
}
# Columns holding Dynamic or JSON, whose structures are V1 below revision 54473.
DYNAMIC_SHAPES = {
    "json": {
        "j": '(\'{"a":\' || toString(number) || \',"b":{"c":"x\' || toString(number % 7) || \'"},'
        "\"arr\":[1,' || toString(number) || ']}')::JSON",
        "typed": 'CAST(\'{"a":{"b":\' || toString(number) || \'},"c":"x","d":[1,2],"lc":"l"}\', '
        "'JSON(a.b UInt32, lc LowCardinality(String), max_dynamic_paths=1)')",
        "nullable": "CAST(if(number % 4 = 0, NULL, '{\"k\":' || toString(number) || '}'), 'Nullable(JSON)')",
        "array": "if(number % 3 = 0, [], [('{\"a\":' || toString(number) || '}')::JSON, '{\"z\":true}'::JSON])",
    },
    "dynamic": {
        "d": "multiIf(number % 5 = 0, NULL::Dynamic, number % 5 = 1, toString(number)::Dynamic, number % 5 = 2, "
        "[number]::Dynamic, number % 5 = 3, (number / 3)::Dynamic, number::Dynamic)",
        "shared": "if(number % 2 = 0, number::Dynamic(max_types=1), toString(number)::Dynamic(max_types=1))",
        "json_in_dynamic": "('{\"q\":' || toString(number) || '}')::JSON::Dynamic",
        "lc_in_dynamic": "toLowCardinality(toString(number % 13))::Dynamic",
    },
    "nested_dynamic": {
        "m": "map('k', number::Dynamic, 's', toString(number)::Dynamic)",
        "t": "CAST(('{\"t\":' || toString(number) || '}', number), 'Tuple(a JSON, b Variant(String, UInt64))')",
        "ad": "[number::Dynamic, 'x'::Dynamic]",
    },
}
FLATTENED = "output_format_native_use_flattened_dynamic_and_json_serialization=1"
JSON_AS_STRING = "output_format_native_write_json_as_string=1"


@pytest.mark.parametrize("revision", [54405, 54453, 54454, 54460, 54472, 54473, 54480, 54491])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_every_column_shape_is_framed_exactly_at_every_revision(clickhouse, shape, revision):
    assert_framed_exactly(clickhouse, SHAPES[shape], revision)


@pytest.mark.parametrize("revision", [54405, 54454, 54460, 54472])
@pytest.mark.parametrize("shape", list(DYNAMIC_SHAPES))
def test_dynamic_and_json_are_framed_exactly_below_their_v2_revision(clickhouse, shape, revision):
    assert_framed_exactly(clickhouse, DYNAMIC_SHAPES[shape], revision)


@pytest.mark.parametrize("revision", [54405, 54460, 54480])
def test_flattened_and_string_serializations_are_framed_exactly_at_every_revision(clickhouse, revision):
    # These serializations do not change with the revision: V2 has no say in them.
    assert_framed_exactly(clickhouse, DYNAMIC_SHAPES["json"] | DYNAMIC_SHAPES["dynamic"], revision, FLATTENED)
    assert_framed_exactly(clickhouse, DYNAMIC_SHAPES["json"], revision, JSON_AS_STRING)


# -- V2 structures (revision 54473 and later) ------------------------------------------------------


def test_dynamic_structure_is_v2_from_revision_54473(clickhouse):
    query = "SELECT 1::Dynamic AS d"
    head = b"\x01\x01\x01d\x07Dynamic"
    values = b"\x00" * 8 + b"\x01" + b"\x011"  # BASIC discriminators; String is variant 1; '1'
    assert native(clickhouse, query) == head + b"\x01" + b"\x00" * 7 + b"\x01\x01\x06String" + values
    v1 = native(clickhouse, query, client_protocol_version="54472")
    assert v1 == BLOCK_INFO + head + b"\x00" + b"\x01" + b"\x00" * 7 + b"\x01\x01\x06String" + values
    v2 = native(clickhouse, query, client_protocol_version="54473")
    assert v2 == BLOCK_INFO + head + b"\x00" + b"\x02" + b"\x00" * 7 + b"\x01\x06String" + values


def test_json_structure_is_v2_from_revision_54473(clickhouse):
    query = """SELECT '{"a":1,"b":"x"}'::JSON AS j"""
    head = b"\x01\x01\x01j\x04JSON\x00"
    paths = b"\x02\x01a\x01b"

    def dynamic(version: bytes, type_name: bytes) -> bytes:
        return version + b"\x00" * 7 + type_name + b"\x00" * 8  # ... then BASIC discriminators

    data = b"\x00" + (1).to_bytes(8, "little") + b"\x01" + b"\x01x" + b"\x00" * 8  # a, b, no shared data
    v1 = dynamic(b"\x01", b"\x01\x01\x05Int64") + dynamic(b"\x01", b"\x01\x01\x06String")
    assert native(clickhouse, query, client_protocol_version="54460") == (
        BLOCK_INFO + head + b"\x00" * 8 + b"\x02" + paths + v1 + data
    )
    v2 = dynamic(b"\x02", b"\x01\x05Int64") + dynamic(b"\x02", b"\x01\x06String")
    assert native(clickhouse, query, client_protocol_version="54480") == (
        BLOCK_INFO_WITH_BUCKETS + head + b"\x02" + b"\x00" * 7 + paths + v2 + data
    )


@functools.cache
def v2_alone(url: str, name: str, expression: str, source: str) -> tuple[bytes, int, bytes]:
    """One column's data with V2 structures (the front's, for one column alone), read back by chDB."""
    type_name, rows, data = column_alone(url, name, expression, source, ONE_BLOCK)
    header = varint(1) + varint(rows) + varint(len(name)) + name.encode() + varint(len(type_name)) + type_name
    v2 = NativeRevision(54473).convert(header + data)[len(BLOCK_INFO) + len(header) + 1 :]
    # chDB reads the V2 structures back to the very same values (and writes them as V1 again).
    table = f"default.v2_{name}_{abs(hash((expression, source)))}"
    created = HTTP.request(
        "POST", url, body=f"CREATE TABLE {table} ({name} {type_name.decode()}) ENGINE = Memory".encode()
    )
    assert created.status == 200, created.data
    insert = HTTP.request(
        "POST", url + "?" + urlencode({"query": f"INSERT INTO {table} FORMAT Native"}), body=header + v2
    )
    assert insert.status == 200, insert.data
    back = HTTP.request("POST", url, body=f"SELECT * FROM {table} FORMAT Native".encode()).data
    HTTP.request("POST", url, body=f"DROP TABLE {table}".encode())
    assert back == header + data
    return type_name, rows, v2


@pytest.mark.parametrize("revision", [54473, 54480, 54491])
@pytest.mark.parametrize("shape", list(DYNAMIC_SHAPES))
def test_dynamic_and_json_are_framed_exactly_with_v2_structures(clickhouse, shape, revision):
    columns = DYNAMIC_SHAPES[shape]
    rows, block = 2500, 1000
    expected = []
    for start in range(0, rows, block):
        source = f"numbers({start}, {min(block, rows - start)})"
        parts = [v2_alone(clickhouse.url + "/", name, expr, source) for name, expr in columns.items()]
        info = BLOCK_INFO_WITH_BUCKETS if revision >= 54480 else BLOCK_INFO
        expected.append(info + varint(len(parts)) + varint(parts[0][1]))
        for name, (type_name, _, data) in zip(columns, parts, strict=True):
            expected.append(varint(len(name)) + name.encode() + varint(len(type_name)) + type_name + b"\x00" + data)
    assert framed(clickhouse, columns, rows, block, revision) == b"".join(expected)
