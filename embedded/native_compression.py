"""ClickHouse's own block compression, as the HTTP interface speaks it with ``compress=1`` / ``decompress=1``.

Every block is::

    16 bytes  CityHash128 of the rest of the block (two little-endian UInt64, high half first)
     1 byte   method: 0x82 LZ4, 0x90 ZSTD, 0x02 none
     4 bytes  compressed size, this 9-byte header included (little-endian UInt32)
     4 bytes  uncompressed size (little-endian UInt32)
     ...      the compressed data

The checksum comes from ``clickhouse-cityhash`` (CityHash v1.0.2, the version ClickHouse froze) and
the codecs from lz4 (raw blocks) and zstandard; this module only frames them.
"""

from __future__ import annotations

import struct

import lz4.block
import zstandard
from clickhouse_cityhash.cityhash import CityHash128

from core.errors import Code
from embedded.errors import ClickHouseError

NONE, LZ4, ZSTD = 0x02, 0x82, 0x90
_CHECKSUM_SIZE = 16
_HEADER_SIZE = 9
_HEADER = struct.Struct("<BII")
_MASK64 = (1 << 64) - 1
# ClickHouse compresses its 1 MiB write buffer at a time and refuses blocks over 1 GiB.
BLOCK_SIZE = 1 << 20
_MAX_COMPRESSED_SIZE = 1 << 30


# network_compression_method values and the method byte each writes (lz4hc writes LZ4 blocks).
_METHODS = {"lz4": LZ4, "lz4hc": LZ4, "zstd": ZSTD, "none": NONE}


def checksum(block: bytes | memoryview) -> bytes:
    value = CityHash128(bytes(block))
    return struct.pack("<QQ", (value >> 64) & _MASK64, value & _MASK64)


def method_byte(name: str) -> int:
    """The method byte for a ``network_compression_method`` setting value."""
    try:
        return _METHODS[name.strip().lower()]
    except KeyError:
        raise ClickHouseError.of(
            Code.UNKNOWN_COMPRESSION_METHOD, f"Unknown compression method: '{name}' (network_compression_method)"
        ) from None


class BlockDecoder:
    """Incremental reader of a body made of compressed blocks; yields the uncompressed bytes."""

    def __init__(self, verify_checksums: bool = True):
        self.verify = verify_checksums
        self._pending = bytearray()
        self._zstd = zstandard.ZstdDecompressor()

    def feed(self, data: bytes) -> bytes:
        self._pending += data
        out = []
        pending = self._pending
        start = 0
        while len(pending) - start >= _CHECKSUM_SIZE + _HEADER_SIZE:
            method, compressed_size, size = _HEADER.unpack_from(pending, start + _CHECKSUM_SIZE)
            if compressed_size < _HEADER_SIZE or compressed_size > _MAX_COMPRESSED_SIZE:
                raise ClickHouseError.of(
                    Code.TOO_LARGE_SIZE_COMPRESSED,
                    f"Too large size_compressed: {compressed_size}. Most likely corrupted data.",
                )
            if size > _MAX_COMPRESSED_SIZE:  # what a block would decompress into, claimed: memory asked for
                raise ClickHouseError.of(
                    Code.TOO_LARGE_SIZE_COMPRESSED,
                    f"Too large size_decompressed: {size}. Most likely corrupted data.",
                )
            end = start + _CHECKSUM_SIZE + compressed_size
            if len(pending) < end:
                break
            block = memoryview(pending)[start + _CHECKSUM_SIZE : end]
            try:
                if self.verify and checksum(block) != bytes(pending[start : start + _CHECKSUM_SIZE]):
                    raise ClickHouseError.of(
                        Code.CHECKSUM_DOESNT_MATCH,
                        "Checksum doesn't match: corrupted data. Reference: "
                        f"{bytes(pending[start : start + _CHECKSUM_SIZE]).hex()}. Actual: {checksum(block).hex()}. "
                        f"Size of compressed block: {compressed_size}",
                    )
                out.append(self._decompress(method, block[_HEADER_SIZE:], size))
            finally:
                block.release()
            start = end
        del pending[:start]
        return b"".join(out)

    def _decompress(self, method: int, data: memoryview, size: int) -> bytes:
        try:
            if method == LZ4:
                return lz4.block.decompress(data, uncompressed_size=size)
            if method == ZSTD:
                return self._zstd.decompress(data, max_output_size=size)
            if method == NONE:
                return bytes(data)
        except (lz4.block.LZ4BlockError, zstandard.ZstdError) as error:
            raise ClickHouseError.of(Code.CANNOT_DECOMPRESS, f"Cannot decompress a compressed block: {error}") from None
        raise ClickHouseError.of(Code.UNKNOWN_COMPRESSION_METHOD, f"Unknown compression method: {method:#04x}")

    def finish(self) -> None:
        if self._pending:
            raise ClickHouseError.of(
                Code.CANNOT_DECOMPRESS,
                f"The request body ends inside a compressed block ({len(self._pending)} bytes left over)",
            )


class BlockEncoder:
    """Frames response bytes as compressed blocks of at most ``BLOCK_SIZE`` uncompressed bytes."""

    def __init__(self, method: int = LZ4, zstd_level: int = 1):
        self.method = method
        self._zstd = zstandard.ZstdCompressor(level=zstd_level) if method == ZSTD else None

    def feed(self, data: bytes) -> bytes:
        if not data:
            return b""
        view = memoryview(data)
        return b"".join(self._block(view[i : i + BLOCK_SIZE]) for i in range(0, len(view), BLOCK_SIZE))

    def finish(self) -> bytes:
        return b""

    def _block(self, data: memoryview) -> bytes:
        if self.method == LZ4:
            payload = lz4.block.compress(data, store_size=False)
        elif self.method == ZSTD:
            payload = self._zstd.compress(data)
        else:
            payload = bytes(data)
        block = _HEADER.pack(self.method, _HEADER_SIZE + len(payload), len(data)) + payload
        return checksum(block) + block
