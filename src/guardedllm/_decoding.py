"""Response bodies decompressed against the size cap.

httpx decompresses each network read whole (its decoders take no output limit): a 64 KiB read
of gzipped zeros is 64 MiB before anything can count it, so a gzip bomb raised peak memory far
past ``max_response_bytes`` before ``BodyBuffer`` refused it. Here an encoded body is read raw
and decompressed at most ``defaults.DECODED_PIECE_BYTES`` at a time (zlib's ``max_length``):
a body refused for its size has held the cap and one piece, and a stream's parser is fed
pieces no larger than a plain body's reads.

Provider requests ask for the encodings decoded here only (``ACCEPT_ENCODING``; a client's
default would add br and zstd whenever their packages are installed, which httpx decodes
whole). A body in any other encoding is refused as undecodable.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence

import httpx

from guardedllm import defaults

__all__ = ["ACCEPT_ENCODING", "Inflater", "decoders_for", "inflate"]

ACCEPT_ENCODING = "gzip, deflate"

# zlib's wbits per encoding: a gzip header and trailer, or a zlib wrapper (RFC 9110's deflate).
_WBITS = {"gzip": zlib.MAX_WBITS | 16, "x-gzip": zlib.MAX_WBITS | 16, "deflate": zlib.MAX_WBITS}


class Inflater:
    """One content encoding's decompressor, handing its output out a bounded piece at a time."""

    def __init__(self, encoding: str) -> None:
        self._zlib = zlib.decompressobj(_WBITS[encoding])
        # RFC 9110's deflate is zlib-wrapped, yet some servers send raw deflate (httpx reads
        # both): the first two bytes tell which, so a deflate body's are held until both came.
        self._head: bytes | None = b"" if encoding == "deflate" else None

    def decode(self, data: bytes) -> Iterator[bytes]:
        """``data`` decompressed, in pieces of at most ``defaults.DECODED_PIECE_BYTES``."""
        if self._head is not None:
            data = self._head + data
            if len(data) < 2:
                self._head = data
                return
            self._head = None
            if not _zlib_header(data):
                self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
        limit = defaults.DECODED_PIECE_BYTES
        while True:
            try:
                piece = self._zlib.decompress(data, limit)
            except zlib.error as exc:
                raise httpx.DecodingError(f"the body does not decompress ({exc})") from None
            if piece:
                yield piece
            # Output past the limit waits in zlib, its input in unconsumed_tail; a piece short of
            # the limit with no input left means all of ``data`` is out.
            data = self._zlib.unconsumed_tail
            if not data and len(piece) < limit:
                return


def _zlib_header(data: bytes) -> bool:
    """Whether ``data`` opens with a zlib header (RFC 1950: deflate method, check bits)."""
    return data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0


def decoders_for(content_encoding: str) -> list[Inflater]:
    """The decompressors for a ``Content-Encoding`` value, in the order to apply them (the
    reverse of the header's). ``httpx.DecodingError`` for an encoding not asked for."""
    inflaters: list[Inflater] = []
    for value in reversed(content_encoding.split(",")):
        encoding = value.strip().lower()
        if encoding in ("", "identity"):
            continue
        if encoding not in _WBITS:
            raise httpx.DecodingError(
                f"the body is {encoding}-encoded, which guardedllm does not ask for "
                f"(Accept-Encoding: {ACCEPT_ENCODING})"
            )
        inflaters.append(Inflater(encoding))
    return inflaters


def inflate(inflaters: Sequence[Inflater], data: bytes) -> Iterator[bytes]:
    """One raw read through ``inflaters`` (``decoders_for``), in bounded pieces."""
    if not inflaters:
        if data:
            yield data
        return
    first, rest = inflaters[0], inflaters[1:]
    for piece in first.decode(data):
        yield from inflate(rest, piece)
