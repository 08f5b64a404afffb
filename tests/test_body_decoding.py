"""Request bodies decoded per Content-Encoding (embedded/codecs.py), a piece at a time.

A few bytes of compressed input can stand for gigabytes (4 GiB of zeros are 131 KB of zstd), and
one decompress call made them at once: the server grew to 2.7 GB and, in a 3 GB container, was
killed. The pure unit below feeds bodies in chunks and checks every piece the decoder hands out;
the HTTP test sends such a body to a server of its own and reads its peak memory.
"""

from __future__ import annotations

import gzip
import random
import zlib

import lz4.frame
import pytest
import zstandard

from embedded.codecs import PIECE, Decoder
from embedded.errors import ClickHouseError
from tests import embedded_server
from tests.intake import HTTP

BOUND = PIECE + (128 << 10)  # a piece, and at most one zstd block more

COMPRESS = {
    "gzip": lambda data: gzip.compress(data, compresslevel=1),
    "deflate": lambda data: zlib.compress(data, 1),
    "zstd": lambda data: zstandard.ZstdCompressor(level=1).compress(data),
    "lz4": lambda data: lz4.frame.compress(data),
}


def decode(encoding: str, body: bytes, chunk: int) -> tuple[bytes, int]:
    """The whole body as the server reads it: chunks fed, then every piece the decoder holds."""
    decoder, out, largest = Decoder(encoding), [], 0
    for start in range(0, len(body), chunk):
        piece = decoder.feed(body[start : start + chunk])
        while piece:
            out.append(piece)
            largest = max(largest, len(piece))
            piece = decoder.more()
    decoder.finish()
    return b"".join(out), largest


@pytest.mark.parametrize("encoding", sorted(COMPRESS))
def test_bodies_of_several_frames_decode_whole_whatever_the_chunks(encoding):
    rng = random.Random(7)
    frames = [bytes(rng.getrandbits(8) for _ in range(size)) * 3 for size in (1, 5000, 70_000)]
    frames.append(b"\n".join(b'{"n": %d}' % n for n in range(300_000)))  # 3 MB that compresses well
    body = b"".join(COMPRESS[encoding](frame) for frame in frames)
    for chunk in (1, 7, 4096, 65536, len(body)):
        if chunk == 1 and len(body) > 200_000:
            chunk = 3  # byte by byte is the same, and slow
        decoded, largest = decode(encoding, body, chunk)
        assert decoded == b"".join(frames), (encoding, chunk)
        assert largest <= BOUND


@pytest.mark.parametrize("encoding", sorted(COMPRESS))
def test_a_body_of_zeros_a_thousand_times_its_size_is_handed_out_in_bounded_pieces(encoding):
    zeros = 256 << 20
    body = COMPRESS[encoding](b"\0" * zeros)
    assert len(body) * 200 < zeros
    decoder, total, largest = Decoder(encoding), 0, 0
    piece = decoder.feed(body)
    while piece:
        total += len(piece)
        largest = max(largest, len(piece))
        piece = decoder.more()
    decoder.finish()
    assert (total, largest <= BOUND) == (zeros, True)


@pytest.mark.parametrize("encoding", sorted(COMPRESS))
def test_a_body_cut_in_the_middle_of_a_frame_is_refused_at_its_end(encoding):
    body = COMPRESS[encoding](b"x" * 100_000 + bytes(range(256)) * 100)
    with pytest.raises(ClickHouseError, match="ends in the middle of a"):
        decode(encoding, body[: len(body) // 2], 4096)


def test_a_zstd_body_that_is_not_zstd_is_refused_naming_it():
    with pytest.raises(ClickHouseError, match=r"Cannot decompress the request body \(zstd\): not a zstd frame"):
        decode("zstd", b"definitely not zstd", 64)


def peak_kib(server) -> int:
    status = open(f"/proc/{server.process.pid}/status").read()  # noqa: SIM115 - read at once
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))


def test_a_zstd_bomb_is_refused_in_bounded_memory(tmp_path):
    """131 KB of zstd that are 4 GiB of zeros, sent as a query: decompressed whole, the server grew
    by 2.2 GB before the query size refused it."""
    compressor = zstandard.ZstdCompressor(level=1).compressobj()
    bomb = b"".join(compressor.compress(b"\0" * (64 << 20)) for _ in range(64)) + compressor.flush()
    server = embedded_server.start(tmp_path / "data")
    try:
        before = peak_kib(server)
        answer = HTTP.request("POST", server.url + "/", body=bomb, headers={"Content-Encoding": "zstd"})
        assert answer.headers["X-ClickHouse-Exception-Code"] == "62", answer.data[:300]  # max query size
        grown_mib = (peak_kib(server) - before) // 1024
        assert grown_mib < 256, f"the server grew by {grown_mib} MiB for a 4 GiB bomb"
    finally:
        server.stop()
