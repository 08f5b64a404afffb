"""ClickHouse's own block compression (compress=1 / decompress=1), the X-ClickHouse-* request headers
and Native output at a client's protocol revision, at the wire level.

The blocks are built and checked here with the codec libraries directly (not with the server's own
module), following ClickHouse's layout: CityHash128 checksum, method byte, compressed size with the
9-byte header, uncompressed size, data. The official clients (tests/test_clients.py) check the
same against their own implementations.
"""

from __future__ import annotations

import base64
import gzip
import struct
import uuid
from urllib.parse import urlencode

import lz4.block
import pytest
import urllib3
import zstandard
from clickhouse_cityhash.cityhash import CityHash128

HTTP = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=5, read=120))
LZ4, ZSTD, NONE = 0x82, 0x90, 0x02


def post(server, body=b"", headers=None, **params):
    url = server.url + "/" + ("?" + urlencode(params) if params else "")
    return HTTP.request("POST", url, body=body, headers=headers or {}, decode_content=False)


def block(data: bytes, method: int = LZ4) -> bytes:
    payload = {
        LZ4: lambda: lz4.block.compress(data, store_size=False),
        ZSTD: lambda: zstandard.ZstdCompressor().compress(data),
        NONE: lambda: data,
    }[method]()
    framed = struct.pack("<BII", method, 9 + len(payload), len(data)) + payload
    value = CityHash128(framed)
    return struct.pack("<QQ", value >> 64, value & (2**64 - 1)) + framed


def unblock(body: bytes) -> tuple[bytes, list[int]]:
    """The uncompressed bytes of a body of blocks, and each block's method; checksums verified."""
    out, methods, pos = [], [], 0
    while pos < len(body):
        method, compressed, size = struct.unpack_from("<BII", body, pos + 16)
        framed = body[pos + 16 : pos + 16 + compressed]
        value = CityHash128(framed)
        assert body[pos : pos + 16] == struct.pack("<QQ", value >> 64, value & (2**64 - 1)), "bad checksum"
        data = framed[9:]
        if method == LZ4:
            data = lz4.block.decompress(data, uncompressed_size=size)
        elif method == ZSTD:
            data = zstandard.ZstdDecompressor().decompress(data, max_output_size=size)
        assert len(data) == size
        out.append(data)
        methods.append(method)
        pos += 16 + compressed
    return b"".join(out), methods


@pytest.fixture
def db(clickhouse):
    database = f"native_{uuid.uuid4().hex[:10]}"
    assert post(clickhouse, f"CREATE DATABASE {database}".encode()).status == 200
    yield database
    post(clickhouse, f"DROP DATABASE IF EXISTS {database}".encode())


# -- compress=1: responses -------------------------------------------------------------------------


@pytest.mark.parametrize("setting, method", [(None, LZ4), ("LZ4", LZ4), ("zstd", ZSTD), ("none", NONE)])
def test_compressed_response_uses_network_compression_method(clickhouse, setting, method):
    params = {"compress": "1"} | ({"network_compression_method": setting} if setting else {})
    response = post(clickhouse, b"SELECT number FROM numbers(300000)", **params)
    assert response.status == 200
    data, methods = unblock(response.data)
    assert data == b"".join(b"%d\n" % i for i in range(300000))
    assert set(methods) == {method}
    assert "Content-Encoding" not in response.headers


def test_compressed_blocks_inside_http_compression(clickhouse):
    response = post(
        clickhouse,
        "SELECT 'é' FORMAT JSONEachRow".encode(),
        {"Accept-Encoding": "gzip"},
        compress="1",
        enable_http_compression="1",
    )
    assert response.headers["Content-Encoding"] == "gzip"
    assert unblock(gzip.decompress(response.data))[0] == '{"\'é\'":"é"}\n'.encode()


def test_errors_are_compressed_too_when_asked(clickhouse):
    response = post(clickhouse, b"SELECT * FROM no_such_table", compress="1")
    assert response.status == 404
    assert response.headers["X-ClickHouse-Exception-Code"] == "60"
    assert unblock(response.data)[0].startswith(b"Code: 60. DB::Exception:")


def test_unknown_network_compression_method_is_refused(clickhouse):
    response = post(clickhouse, b"SELECT 1", compress="1", network_compression_method="snappy")
    assert response.headers["X-ClickHouse-Exception-Code"] == "89"
    assert b"snappy" in response.data


# -- decompress=1: requests ------------------------------------------------------------------------


@pytest.mark.parametrize("method", [LZ4, ZSTD, NONE])
def test_compressed_insert_bodies(clickhouse, db, method):
    post(clickhouse, f"CREATE TABLE {db}.t (n UInt32, s String) ENGINE = MergeTree ORDER BY n".encode())
    rows = [b"".join(f"{i}\tzoë {i}\n".encode() for i in range(start, start + 1000)) for start in range(0, 5000, 1000)]
    body = b"".join(block(part, method) for part in rows)
    response = post(clickhouse, body, query=f"INSERT INTO {db}.t FORMAT TSV", decompress="1")
    assert response.status == 200, response.data
    # The statement itself may travel in the compressed body.
    statement = block(f"INSERT INTO {db}.t FORMAT TSV\n5000\tzoë\n".encode(), method)
    assert post(clickhouse, statement, decompress="1").status == 200
    count = post(clickhouse, f"SELECT count(), countIf(s LIKE 'zoë%') FROM {db}.t".encode())
    assert count.data == b"5001\t5001\n"


def test_large_compressed_insert_streams_through(clickhouse, db):
    post(clickhouse, f"CREATE TABLE {db}.big (n UInt64) ENGINE = MergeTree ORDER BY n".encode())

    def chunks():
        for start in range(0, 2_000_000, 100_000):
            yield block(b"".join(b"%d\n" % i for i in range(start, start + 100_000)))

    response = HTTP.request(
        "POST",
        clickhouse.url + "/?" + urlencode({"query": f"INSERT INTO {db}.big FORMAT TSV", "decompress": "1"}),
        body=chunks(),
        chunked=True,
    )
    assert response.status == 200, response.data
    assert post(clickhouse, f"SELECT count(), sum(n) FROM {db}.big".encode()).data == b"2000000\t1999999000000\n"


def test_corrupt_checksum_is_refused_and_nothing_is_inserted(clickhouse, db):
    post(clickhouse, f"CREATE TABLE {db}.c (n UInt32) ENGINE = MergeTree ORDER BY n".encode())
    good = block(b"1\n2\n")
    corrupt = bytes([good[0] ^ 0xFF]) + good[1:]
    response = post(clickhouse, good + corrupt, query=f"INSERT INTO {db}.c FORMAT TSV", decompress="1")
    assert response.status == 500
    assert response.headers["X-ClickHouse-Exception-Code"] == "40"
    assert b"Checksum doesn't match" in response.data
    assert post(clickhouse, f"SELECT count() FROM {db}.c".encode()).data == b"0\n"
    # ClickHouse's setting to skip the check is honoured.
    skipped = post(
        clickhouse,
        corrupt,
        query=f"INSERT INTO {db}.c FORMAT TSV",
        decompress="1",
        http_native_compression_disable_checksumming_on_decompress="1",
    )
    assert skipped.status == 200, skipped.data
    assert post(clickhouse, f"SELECT sum(n) FROM {db}.c".encode()).data == b"3\n"


def test_truncated_or_garbage_blocks_are_clear_errors(clickhouse):
    truncated = post(clickhouse, block(b"SELECT 1")[:-3], decompress="1")
    assert truncated.headers["X-ClickHouse-Exception-Code"] == "271"
    assert b"ends inside a compressed block" in truncated.data
    garbage = post(clickhouse, b"\x00" * 16 + struct.pack("<BII", LZ4, 0xFFFFFFFF, 1), decompress="1")
    assert garbage.headers["X-ClickHouse-Exception-Code"] == "246"


def test_a_block_claiming_to_decompress_into_gigabytes_is_refused_before_it_is_decompressed(clickhouse):
    """A block's header says what it decompresses into: 65 KB of zstd that were 2 GiB of zeros were
    decompressed whole (6.6 GB at the peak) before the query size refused them. Here the block
    claims 2 GiB and holds a few zeros: refused by its header alone."""
    payload = zstandard.ZstdCompressor().compress(b"\0" * 1024)
    framed = struct.pack("<BII", ZSTD, 9 + len(payload), 2 << 30) + payload
    response = post(
        clickhouse,
        b"\0" * 16 + framed,
        decompress="1",
        http_native_compression_disable_checksumming_on_decompress="1",
    )
    assert response.headers["X-ClickHouse-Exception-Code"] == "246"
    assert b"Too large size_decompressed: 2147483648" in response.data


# -- X-ClickHouse-* request headers ----------------------------------------------------------------


def test_format_header_wins_over_default_format_and_loses_to_the_format_clause(clickhouse):
    by_header = post(clickhouse, b"SELECT 1 AS x", {"X-ClickHouse-Format": "JSONEachRow"}, default_format="CSV")
    assert by_header.data == b'{"x":1}\n'
    assert by_header.headers["X-ClickHouse-Format"] == "JSONEachRow"
    by_clause = post(clickhouse, b"SELECT 1 AS x FORMAT TSVWithNames", {"X-ClickHouse-Format": "JSONEachRow"})
    assert by_clause.data == b"x\n1\n"
    rows = post(clickhouse, b"SELECT 1 AS x", {"X-ClickHouse-Format": "RowBinaryWithNamesAndTypes"})
    assert rows.data == b"\x01\x01x\x05UInt8\x01"


def test_database_header_wins_over_the_database_parameter(clickhouse, db):
    post(clickhouse, b"CREATE TABLE here (x UInt8) ENGINE = Memory", {"X-ClickHouse-Database": db}, database="default")
    assert post(clickhouse, f"EXISTS TABLE {db}.here".encode()).data == b"1\n"
    assert post(clickhouse, b"SELECT currentDatabase()", {"X-ClickHouse-Database": db}).data == f"{db}\n".encode()
    assert post(clickhouse, b"SELECT currentDatabase()").data == b"default\n"


def test_credentials_from_one_place_only(clickhouse):
    ok = post(
        clickhouse, b"SELECT 1", {"X-ClickHouse-User": "default", "X-ClickHouse-Key": "", "X-ClickHouse-Quota": "q"}
    )
    assert ok.data == b"1\n"
    basic = {"Authorization": "Basic " + base64.b64encode(b"default:").decode()}
    assert post(clickhouse, b"SELECT 2", basic).data == b"2\n"
    mixes = [
        ({"X-ClickHouse-User": "default", **basic}, {}),
        ({"X-ClickHouse-User": "default"}, {"user": "default"}),
        (basic, {"password": ""}),
    ]
    for headers, params in mixes:
        refused = post(clickhouse, b"SELECT 1", headers, **params)
        assert refused.status == 403, (headers, params)
        assert refused.headers["X-ClickHouse-Exception-Code"] == "516"
        assert b"Invalid authentication: it is not allowed to use" in refused.data


# -- client_protocol_version -----------------------------------------------------------------------


def test_native_output_at_a_client_revision_has_block_info_and_serialization_flags(clickhouse):
    query = "SELECT 7::UInt8 AS x, 'é' AS s FORMAT Native".encode()
    plain = post(clickhouse, query).data
    assert plain == b"\x02\x01\x01x\x05UInt8\x07\x01s\x06String\x02\xc3\xa9"
    framed = post(clickhouse, query, client_protocol_version="54460").data
    block_info = b"\x01\x00\x02\xff\xff\xff\xff\x00"
    assert framed == block_info + b"\x02\x01\x01x\x05UInt8\x00\x07\x01s\x06String\x00\x02\xc3\xa9"
    # Below the custom-serialization revision there is block info but no flag byte.
    older = post(clickhouse, b"SELECT 7::UInt8 AS x FORMAT Native", client_protocol_version="54453").data
    assert older == block_info + b"\x01\x01\x01x\x05UInt8\x07"


def test_native_revision_framing_over_many_blocks_and_nested_types(clickhouse):
    query = (
        "SELECT number AS n, [toString(number), 'ü'] AS a, toLowCardinality(toString(number % 7)) AS lc, "
        "map('k', toNullable(number)) AS m FROM numbers(250000) FORMAT Native"
    )
    plain = post(clickhouse, query.encode(), max_block_size="30000").data
    framed = post(clickhouse, query.encode(), max_block_size="30000", client_protocol_version="54460").data
    blocks = framed.count(b"\x01\x00\x02\xff\xff\xff\xff\x00\x04")
    assert blocks >= 8
    # Per block: 8 bytes of block info and one flag byte per column, nothing else changes
    # (tests/test_native_revision.py checks every type byte for byte, tests/test_native_refusals.py
    # what is refused).
    assert len(framed) == len(plain) + blocks * (8 + 4)
