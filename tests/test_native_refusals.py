"""What the front refuses to write at a client's protocol revision, and why; never wrongly framed bytes.

Over HTTP for what chDB really writes (columns whose layout at that revision the front cannot
write); on crafted chunks for chDB output that cannot be produced on purpose (its own failure
paths: a chunk that ends inside a column, structure versions chDB does not write today).
"""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
import urllib3

from embedded.errors import ClickHouseError
from embedded.native_blocks import NativeRevision

HTTP = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=5, read=120))
BLOCK_INFO = b"\x01\x00\x02\xff\xff\xff\xff\x00"


def post(server, sql: str, **params):
    url = server.url + "/?" + urlencode(params)
    return HTTP.request("POST", url, body=(sql + " FORMAT Native").encode())


def refused(server, sql: str, revision: int) -> str:
    response = post(server, sql, client_protocol_version=str(revision))
    assert response.status == 501, response.data[:300]
    assert response.headers["X-ClickHouse-Exception-Code"] == "48"
    return response.data.decode()


@pytest.mark.parametrize("revision", [54405, 54460])
def test_aggregate_states_of_unknown_layout_are_refused_with_the_way_out(clickhouse, revision):
    message = refused(clickhouse, "SELECT 1 AS k, uniqState(number) AS u FROM numbers(10)", revision)
    assert "column u of type AggregateFunction(uniq, UInt64)" in message
    assert "finalizeAggregation, uniqMerge" in message
    # Nothing else of the answer is sent: the error is the whole body.
    assert message.startswith("Code: 48. DB::Exception: Native output at client_protocol_version")
    # At revision 0 the bytes are chDB's own, whatever the type.
    assert post(clickhouse, "SELECT uniqState(number) AS u FROM numbers(10)").status == 200


def run(server, sql: str) -> None:
    response = HTTP.request("POST", server.url, body=sql.encode())
    assert response.status == 200, response.data


def test_versioned_aggregate_states_are_refused(clickhouse):
    run(clickhouse, "DROP TABLE IF EXISTS default.versioned_states")
    column = "s AggregateFunction(sumMap, Array(UInt8), Array(UInt64))"
    run(clickhouse, f"CREATE TABLE default.versioned_states ({column}) ENGINE = Memory")
    run(clickhouse, "INSERT INTO default.versioned_states SELECT sumMapState([1::UInt8], [2::UInt64])")
    # The table pins the state's version (1) in its column's type; a server writes the version the
    # revision picks, chDB (at revision 0) the one of a type without a version.
    message = refused(clickhouse, "SELECT s FROM default.versioned_states", 54460)
    assert "column s of type AggregateFunction(sumMap, Array(UInt8), Array(UInt64))" in message
    run(clickhouse, "DROP TABLE default.versioned_states")


def test_aggregate_states_over_nullable_arguments_are_refused(clickhouse):
    message = refused(clickhouse, "SELECT argMaxState(toNullable('x'), 1) AS a", 54460)
    assert "Nullable arguments" in message


def test_below_54405_low_cardinality_and_what_may_hold_it_are_refused(clickhouse):
    assert "cast the column to its plain type" in refused(clickhouse, "SELECT toLowCardinality('a') AS l", 54404)
    assert "column j of type JSON" in refused(clickhouse, """SELECT '{"a":1}'::JSON AS j""", 54404)
    plain = post(clickhouse, "SELECT 7::UInt8 AS x", client_protocol_version="54404")
    assert plain.data == BLOCK_INFO + b"\x01\x01\x01x\x05UInt8\x07"


def test_from_54492_string_data_is_refused_and_the_rest_is_framed(clickhouse):
    message = refused(clickhouse, "SELECT 1 AS n, [toNullable('x')] AS s", 54492)
    assert "column s of type Array(Nullable(String))" in message and "client_protocol_version 54491" in message
    refused(clickhouse, "SELECT 1::Dynamic AS d", 54492)  # holds strings (SharedVariant) whatever its values
    numbers = post(clickhouse, "SELECT 7::UInt8 AS x", client_protocol_version="54492")
    assert numbers.data == b"\x01\x00\x02\xff\xff\xff\xff\x03\x00\x00" + b"\x01\x01\x01x\x05UInt8\x00\x07"


def test_types_written_in_binary_are_refused(clickhouse):
    sql = "SELECT 1 AS x SETTINGS output_format_native_encode_types_in_binary_format = 1"
    message = refused(clickhouse, sql, 54460)
    assert "output_format_native_encode_types_in_binary_format" in message


# -- crafted chunks --------------------------------------------------------------------------------


def column(name: bytes, type_name: bytes, data: bytes, rows: int = 1) -> bytes:
    return b"\x01" + bytes([rows]) + bytes([len(name)]) + name + bytes([len(type_name)]) + type_name + data


def convert_error(chunk: bytes, revision: int = 54460) -> ClickHouseError:
    with pytest.raises(ClickHouseError) as caught:
        NativeRevision(revision).convert(chunk)
    return caught.value


DYNAMIC_V1 = b"\x01" + b"\x00" * 7 + b"\x01\x01\x06String" + b"\x00" * 8 + b"\x01" + b"\x011"


def test_a_chunk_ending_inside_a_column_is_an_error_not_a_short_answer():
    whole = column(b"d", b"Dynamic", DYNAMIC_V1)
    assert NativeRevision(54460).convert(whole).endswith(b"\x011")
    for cut in (len(whole) - 1, len(whole) - 3, len(whole) - 12):
        error = convert_error(whole[:cut])
        assert error.code == 49 and "did not end with the block" in error.message
    error = convert_error(whole + b"\x00")  # and one that goes on past its blocks
    assert error.code == 49


@pytest.mark.parametrize(
    "type_name, data, reason",
    [
        (b"Dynamic", b"\x04" + b"\x00" * 7 + b"\x00", "Dynamic structure version 4"),
        (b"JSON", b"\x04" + b"\x00" * 7 + b"\x00", "JSON serialization version 4"),
        (b"Variant(String, UInt8)", b"\x01" + b"\x00" * 7 + b"\x00\x00", "discriminators in a mode other than BASIC"),
        (b"LowCardinality(String)", b"\x02" + b"\x00" * 15, "unknown LowCardinality serialization version"),
        (b"Frobnicator(UInt8)", b"\x00", "the layout of Frobnicator columns is not known"),
        (b"AggregateFunction(1, sumMap, Array(UInt8), Array(UInt64))", b"\x00", "its state version 1 depends on"),
        (b"Tuple(UInt8", b"\x00", "cannot read the type name"),
    ],
)
def test_layouts_chdb_does_not_write_are_refused(type_name, data, reason):
    error = convert_error(column(b"c", type_name, data))
    assert error.code == 48 and reason in error.message, error.message


def test_v2_structures_from_chdb_would_go_to_old_clients_as_v1():
    v2 = b"\x02" + b"\x00" * 7 + b"\x01\x06String" + b"\x00" * 8 + b"\x01" + b"\x011"
    assert NativeRevision(54460).convert(column(b"d", b"Dynamic", v2)) == (
        BLOCK_INFO + column(b"d", b"Dynamic", b"") + b"\x00" + DYNAMIC_V1
    )
