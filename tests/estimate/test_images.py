"""The image tile formula and the image header parsers."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from guardedllm.estimate._images import (
    GPT_4O_IMAGE_RATES,
    GPT_4O_MINI_IMAGE_RATES,
    ImageTokenRates,
    data_url_image_size,
    image_size,
    image_tokens,
    max_image_tokens,
)

from . import images_factory as make

# --------------------------------------------------------------------------- tile formula

# Worked examples from OpenAI's vision guide, "Calculating costs"
# (https://platform.openai.com/docs/guides/vision): "A 1024 x 1024 square image in detail: high
# mode costs 765 tokens" (scaled to 768 x 768, 4 tiles: 170 * 4 + 85); "A 2048 x 4096 image in
# detail: high mode costs 1105 tokens" (1024 x 2048, then 768 x 1536, 6 tiles: 170 * 6 + 85);
# "A 4096 x 8192 image in detail: low most costs 85 tokens". The other rows are derived by the
# same steps: 4096 x 8192 high scales to 1024 x 2048 like the 2048 x 4096 one; 512 x 512 is
# one tile and is not scaled up (85 + 170).
DOC_CASES = [
    (1024, 1024, "high", 765),
    (2048, 4096, "high", 1105),
    (4096, 8192, "low", 85),
    (4096, 8192, "high", 1105),
    (512, 512, "low", 85),
    (512, 512, "high", 255),
    (512, 512, "auto", 255),
    (513, 512, "high", 85 + 2 * 170),  # one pixel over a tile edge costs a tile
    (128, 64, "high", 255),
    (768, 2048, "high", 85 + 8 * 170),  # the largest: 2 x 4 tiles
    (2048, 1, "high", 85 + 4 * 170),
    # Scaled sides round up: 1539 x 769 becomes 1537 x 768 (1536.999 rounded up), 4 x 2 tiles.
    # Rounding down would give 3 x 2; where OpenAI's rounding is unknown we err high.
    (1539, 769, "high", 85 + 8 * 170),
]


@pytest.mark.parametrize(("width", "height", "detail", "tokens"), DOC_CASES)
def test_tile_formula_matches_openai_examples(
    width: int, height: int, detail: str, tokens: int
) -> None:
    assert image_tokens(width, height, detail) == tokens
    assert image_tokens(height, width, detail) == tokens  # orientation does not matter


def test_rates_are_parameters() -> None:
    # gpt-4o-mini bills images with the same tiles and larger constants.
    assert image_tokens(4096, 8192, "low", GPT_4O_MINI_IMAGE_RATES) == 2833
    assert image_tokens(1024, 1024, "high", GPT_4O_MINI_IMAGE_RATES) == 2833 + 4 * 5667
    assert image_tokens(1024, 1024, "high", ImageTokenRates(base=0, per_tile=1)) == 4


def test_unknown_size_is_the_worst_case() -> None:
    assert max_image_tokens("high") == 85 + 8 * 170 == 1445
    assert max_image_tokens("auto") == 1445
    assert max_image_tokens("low") == 85
    assert max_image_tokens("high", GPT_4O_MINI_IMAGE_RATES) == 2833 + 8 * 5667


@given(st.integers(1, 20_000), st.integers(1, 20_000), st.sampled_from(["low", "high", "auto"]))
def test_no_image_costs_more_than_the_worst_case(width: int, height: int, detail: str) -> None:
    assert (
        GPT_4O_IMAGE_RATES.base <= image_tokens(width, height, detail) <= max_image_tokens(detail)
    )


def test_non_positive_size_is_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        image_tokens(0, 10)


def test_negative_rates_are_refused() -> None:
    with pytest.raises(ValueError, match="base"):
        ImageTokenRates(base=-1, per_tile=170)


# --------------------------------------------------------------------------- headers

BUILDERS = {
    "png": (make.png, "image/png"),
    "gif": (make.gif, "image/gif"),
    "webp-lossy": (make.webp_lossy, "image/webp"),
    "webp-lossless": (make.webp_lossless, "image/webp"),
    "webp-extended": (make.webp_extended, "image/webp"),
    "jpeg": (make.jpeg, "image/jpeg"),
}


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_header_sizes(kind: str) -> None:
    build, mime = BUILDERS[kind]
    data = build(1234, 567)
    assert image_size(data) == (1234, 567)
    assert data_url_image_size(make.data_url(data, mime)) == (1234, 567)


@pytest.mark.parametrize("kind", sorted(BUILDERS))
@given(width=st.integers(1, 16383), height=st.integers(1, 16383))
def test_header_sizes_round_trip(kind: str, width: int, height: int) -> None:
    # 16383 is the largest size the 14-bit VP8 / VP8L fields hold.
    assert image_size(BUILDERS[kind][0](width, height)) == (width, height)


def test_large_sizes_in_wide_fields() -> None:
    assert image_size(make.png(100_000, 3)) == (100_000, 3)
    assert image_size(make.webp_extended(1 << 24, 5)) == (1 << 24, 5)
    assert image_size(make.gif(65535, 1)) == (65535, 1)


def test_jpeg_behind_a_large_exif_segment() -> None:
    # 60 kB of APP1 before the frame header: the data URL is decoded in growing prefixes.
    data = make.jpeg(4000, 3000, exif_bytes=60_000)
    assert data_url_image_size(make.data_url(data, "image/jpeg")) == (4000, 3000)


def test_jpeg_fill_bytes_before_a_marker() -> None:
    assert image_size(make.jpeg(640, 480, fill_bytes=3)) == (640, 480)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x89PNG\r\n\x1a\n\x00\x00",  # cut inside the IHDR chunk
        b"GIF89a\x01",
        make.jpeg(10, 10)[:30],  # cut before the frame header
        b"not an image at all",
        b"\xff\xd8\xff\xda\x00\x08",  # scan before any frame header
        b"RIFF\x00\x00\x00\x00WEBPVP8Z" + b"\x00" * 20,  # unknown WEBP chunk
    ],
)
def test_unreadable_headers_give_none(data: bytes) -> None:
    assert image_size(data) is None


@pytest.mark.parametrize(
    "url",
    [
        "data:image/svg+xml,%3Csvg%3E%3C/svg%3E",  # not base64
        "data:image/png;base64,",
        "data:image/png;base64,!!!!",
        "data:image/png;base64," + base64.b64encode(b"short").decode(),
        "data:image/png",  # no payload at all
        "data:text/plain;base64," + base64.b64encode(b"hello, this is text" * 5).decode(),
        make.data_url(make.png(0, 10)),  # a zero-width image cannot be priced
    ],
)
def test_unreadable_data_urls_give_none(url: str) -> None:
    assert data_url_image_size(url) is None


@given(st.binary(max_size=200))
def test_header_parser_never_raises(data: bytes) -> None:
    size = image_size(data)
    assert size is None or (size[0] >= 0 and size[1] >= 0)


@given(st.text(max_size=200))
def test_data_url_parser_never_raises(payload: str) -> None:
    data_url_image_size("data:image/png;base64," + payload)
