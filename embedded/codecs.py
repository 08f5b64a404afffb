"""HTTP body codecs: request bodies by Content-Encoding, responses by Accept-Encoding.

The codecs themselves come from zlib, lz4 and zstandard; this module only adapts them to
incremental use and to ClickHouse's names for them.
"""

from __future__ import annotations

import zlib

import lz4.frame
import zstandard

from core.errors import Code
from embedded.errors import ClickHouseError

# What the server can produce, in its order of preference when a client accepts several.
RESPONSE_ENCODINGS = ("zstd", "lz4", "gzip", "deflate")


class Decoder:
    """Incremental decompression of a request body that may hold several concatenated frames."""

    def __init__(self, encoding: str):
        self.encoding = encoding
        self._new = {
            "gzip": lambda: zlib.decompressobj(wbits=31),
            "x-gzip": lambda: zlib.decompressobj(wbits=31),
            "deflate": lambda: zlib.decompressobj(wbits=15),
            "zstd": lambda: zstandard.ZstdDecompressor().decompressobj(),
            "lz4": lz4.frame.LZ4FrameDecompressor,
        }.get(encoding)
        if self._new is None:
            raise ClickHouseError.of(Code.UNKNOWN_COMPRESSION_METHOD, f"Unknown Content-Encoding: {encoding}")
        self._current = self._new()

    def feed(self, data: bytes) -> bytes:
        out = []
        try:
            while data:
                out.append(self._current.decompress(data))
                data = self._leftover()
                if data:  # a frame ended and another one starts in the same chunk
                    self._current = self._new()
        except (zlib.error, zstandard.ZstdError, RuntimeError) as error:
            raise ClickHouseError.of(
                Code.CANNOT_DECOMPRESS, f"Cannot decompress the request body ({self.encoding}): {error}"
            ) from None
        return b"".join(out)

    def _leftover(self) -> bytes:
        current = self._current
        if isinstance(current, lz4.frame.LZ4FrameDecompressor):
            return current.unused_data if current.eof else b""
        if hasattr(current, "eof"):  # zlib and zstandard
            return current.unused_data if current.eof else b""
        return b""

    def finish(self) -> None:
        eof = getattr(self._current, "eof", True)
        if not eof:
            raise ClickHouseError.of(
                Code.CANNOT_DECOMPRESS, f"The request body ends in the middle of a {self.encoding} frame"
            )


class Encoder:
    """Incremental compression of a response body."""

    def __init__(self, encoding: str, level: int | None = None):
        self.encoding = encoding
        if encoding == "gzip":
            self._codec = zlib.compressobj(level if level is not None else 3, wbits=31)
        elif encoding == "deflate":
            self._codec = zlib.compressobj(level if level is not None else 3, wbits=15)
        elif encoding == "zstd":
            self._codec = zstandard.ZstdCompressor(level=level if level is not None else 3).compressobj()
        elif encoding == "lz4":
            self._codec = lz4.frame.LZ4FrameCompressor()
            self._started = False
        else:
            raise ValueError(f"unsupported response encoding {encoding}")

    def feed(self, data: bytes) -> bytes:
        if self.encoding == "lz4":
            head = b""
            if not self._started:
                head, self._started = self._codec.begin(), True
            return head + self._codec.compress(data)
        return self._codec.compress(data)

    def finish(self) -> bytes:
        if self.encoding == "lz4":
            head = b"" if self._started else self._codec.begin()
            return head + self._codec.flush()
        return self._codec.flush()


def choose_response_encoding(accept_encoding: str) -> str | None:
    """The first encoding in our preference list that the client accepts (q=0 excluded)."""
    accepted = set()
    for part in accept_encoding.split(","):
        name, _, params = part.strip().partition(";")
        if params.replace(" ", "") in ("q=0", "q=0.0", "q=0.00", "q=0.000"):
            continue
        accepted.add(name.strip().lower())
    for encoding in RESPONSE_ENCODINGS:
        if encoding in accepted:
            return encoding
    if "x-gzip" in accepted:
        return "gzip"
    return None


class ResponseEncoder:
    """A response body's encoders in ClickHouse's order: its own blocks (compress=1), then Content-Encoding."""

    def __init__(self, stages: list):
        self._stages = stages

    def feed(self, data: bytes) -> bytes:
        for stage in self._stages:
            data = stage.feed(data)
        return data

    def finish(self) -> bytes:
        data = b""
        for stage in self._stages:
            data = stage.feed(data) + stage.finish() if data else stage.finish()
        return data
