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


# The most a decoder hands out at once: a few bytes of input can stand for gigabytes of output
# (4 GiB of zeros are 131 KB of zstd), which one decompress call made at once.
PIECE = 1 << 20

_ZSTD_MAGIC = 0xFD2FB528
_ZSTD_BLOCK_MAX = 128 << 10


class Decoder:
    """Incremental decompression of a request body that may hold several concatenated frames,
    handed out in pieces of at most about PIECE bytes: `feed` takes input and gives the first
    piece, `more` the next ones from the input already taken (b"" when it needs more input)."""

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
        self._input = bytearray()  # taken, not yet decompressed
        self._zstd = _ZstdUnits() if encoding == "zstd" else None
        self._output_pending = False  # the last call stopped at its limit with output still inside

    def feed(self, data: bytes) -> bytes:
        self._input += data
        return self.more()

    def more(self) -> bytes:
        try:
            if self._zstd is not None:
                return self._more_zstd()
            if isinstance(self._current, lz4.frame.LZ4FrameDecompressor):
                return self._more_lz4()
            return self._more_zlib()
        except (zlib.error, zstandard.ZstdError, RuntimeError) as error:
            raise ClickHouseError.of(
                Code.CANNOT_DECOMPRESS, f"Cannot decompress the request body ({self.encoding}): {error}"
            ) from None

    def _more_zlib(self) -> bytes:
        out, size = [], 0
        while (self._input or self._output_pending) and size < PIECE:
            if self._current.eof:  # a frame ended and another one starts
                self._current = self._new()
            wanted = PIECE - size
            piece = self._current.decompress(bytes(self._input), wanted)
            self._input = bytearray(self._current.unused_data if self._current.eof else self._current.unconsumed_tail)
            # A call that filled its limit may have left output inside: the next one takes it.
            self._output_pending = len(piece) == wanted and not self._current.eof
            out.append(piece)
            size += len(piece)
        return b"".join(out)

    def _more_lz4(self) -> bytes:
        out, size = [], 0
        while (self._input or self._output_pending) and size < PIECE:
            if self._current.eof:
                self._current = self._new()
            data, self._input = bytes(self._input), bytearray()
            piece = self._current.decompress(data, max_length=PIECE - size)
            if self._current.eof:
                self._input = bytearray(self._current.unused_data or b"")
            self._output_pending = not self._current.eof and not self._current.needs_input
            out.append(piece)
            size += len(piece)
        return b"".join(out)

    def _more_zstd(self) -> bytes:
        out, size, start = [], 0, 0
        view = memoryview(self._input)
        try:
            while size < PIECE:
                unit = self._zstd.next_unit(view[start:])
                if unit is None:
                    break
                length, kind = unit
                if kind == "frame":
                    self._current = self._new()
                if kind != "skip":  # a block holds at most 128 KiB: each piece is bounded
                    piece = self._current.decompress(view[start : start + length])
                    out.append(piece)
                    size += len(piece)
                start += length
        finally:
            view.release()
            del self._input[:start]  # once a call: a bomb's 4-byte blocks moved the rest at each one
        return b"".join(out)

    def finish(self) -> None:
        if self._zstd is not None:
            ended = not self._input and self._zstd.between_frames
        else:
            ended = not self._input and not self._output_pending and getattr(self._current, "eof", True)
        if not ended:
            raise ClickHouseError.of(
                Code.CANNOT_DECOMPRESS, f"The request body ends in the middle of a {self.encoding} frame"
            )


class _ZstdUnits:
    """Splits a zstd stream into its frames' headers, blocks and checksums (RFC 8878), so that each
    goes to the decompressor alone and gives at most one block's 128 KiB."""

    def __init__(self) -> None:
        self.between_frames = True
        self._checksum = False
        self._last_block = False

    def next_unit(self, data: memoryview) -> tuple[int, str] | None:
        """(length, kind) of the whole unit at the start of ``data``; None until it is all there."""
        if self.between_frames:
            if len(data) < 4:
                return None
            magic = int.from_bytes(data[:4], "little")
            if 0x184D2A50 <= magic <= 0x184D2A5F:  # a skippable frame
                if len(data) < 8:
                    return None
                length = 8 + int.from_bytes(data[4:8], "little")
                return (length, "skip") if len(data) >= length else None
            if magic != _ZSTD_MAGIC:
                raise zstandard.ZstdError(f"not a zstd frame (magic {magic:#010x})")
            if len(data) < 5:
                return None
            descriptor = data[4]
            single_segment = bool(descriptor & 0x20)
            content_size_bytes = (1 if single_segment else 0, 2, 4, 8)[descriptor >> 6]
            length = 5 + (0 if single_segment else 1) + (0, 1, 2, 4)[descriptor & 0x03] + content_size_bytes
            if len(data) < length:
                return None
            self.between_frames, self._checksum, self._last_block = False, bool(descriptor & 0x04), False
            return length, "frame"
        if self._last_block:  # the frame's checksum
            if len(data) < 4:
                return None
            self.between_frames = True
            return 4, "checksum"
        if len(data) < 3:
            return None
        header = int.from_bytes(data[:3], "little")
        last, kind, size = header & 1, (header >> 1) & 3, header >> 3
        if kind == 3 or size > _ZSTD_BLOCK_MAX:
            raise zstandard.ZstdError("corrupt block header")
        length = 3 + (1 if kind == 1 else size)
        if len(data) < length:
            return None
        if last:
            self._last_block = True
            if not self._checksum:
                self.between_frames = True
        return length, "block"


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
