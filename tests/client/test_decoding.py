"""Encoded bodies decompressed a bounded piece at a time (``_decoding.py``), whatever the reads."""

from __future__ import annotations

import gzip
import itertools
import zlib
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from guardedllm import defaults
from guardedllm._decoding import Inflater, decoders_for, inflate

PIECE = defaults.DECODED_PIECE_BYTES


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` as the reads a network might deliver it in, cut at ``cuts``."""
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def decoded(reads: list[bytes], inflaters: list[Inflater]) -> Iterator[bytes]:
    for data in reads:
        yield from inflate(inflaters, data)


def raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


ENCODE = {"gzip": gzip.compress, "x-gzip": gzip.compress, "deflate": zlib.compress}


@given(
    body=st.binary(max_size=2000) | st.integers(0, 4 * PIECE).map(lambda n: b"\0" * n),
    encoding=st.sampled_from(["gzip", "x-gzip", "deflate", "deflate-raw", "gzip, deflate"]),
    cuts=st.lists(st.integers(min_value=0), max_size=8),
)
def test_any_reads_decode_to_the_body_in_bounded_pieces(
    body: bytes, encoding: str, cuts: list[int]
) -> None:
    encoded = body
    for name in encoding.split(", "):
        encoded = raw_deflate(encoded) if name == "deflate-raw" else ENCODE[name](encoded)
    header = encoding.replace("deflate-raw", "deflate")
    pieces = list(decoded(split(encoded, cuts), decoders_for(header)))
    assert b"".join(pieces) == body
    assert all(0 < len(piece) <= PIECE for piece in pieces)


def test_a_bomb_comes_out_one_piece_at_a_time() -> None:
    # The whole 16 MiB of zeros in one read: pieces are taken one by one, never all at once.
    bomb = gzip.compress(b"\0" * (16 * 1024 * 1024))
    pieces = decoded([bomb], decoders_for("gzip"))
    assert [len(next(pieces)) for _ in range(3)] == [PIECE] * 3


@pytest.mark.parametrize("header", ["identity", "", " identity , "])
def test_identity_is_no_encoding(header: str) -> None:
    assert decoders_for(header) == []
    assert list(decoded([b"as is", b""], [])) == [b"as is"]


@pytest.mark.parametrize("header", ["br", "zstd", "compress", "gzip, br"])
def test_an_encoding_not_asked_for_is_refused(header: str) -> None:
    with pytest.raises(httpx.DecodingError, match="does not ask for"):
        decoders_for(header)


@pytest.mark.parametrize("header", ["gzip", "deflate"])
def test_a_corrupt_body_is_a_decoding_error(header: str) -> None:
    with pytest.raises(httpx.DecodingError, match="does not decompress"):
        list(decoded([b"this is not compressed at all"], decoders_for(header)))
