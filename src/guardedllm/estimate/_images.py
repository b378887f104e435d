"""Image input tokens: OpenAI's tile formula, and image sizes read from data-URL headers.

OpenAI's vision guide ("Calculating costs", https://platform.openai.com/docs/guides/vision):
``detail: low`` costs a fixed base (85 tokens for gpt-4o). ``high`` (and ``auto``, counted as
``high`` here, the worst case) first scales the image to fit in a 2048 x 2048 square, then so that
its shortest side is 768 px, and costs the base plus a fixed amount (170 for gpt-4o) per 512 px
tile. Images are only ever scaled down: a 128 x 64 image is one tile (the per-model tables
in the OpenAI community thread "Vision - more than one way to send a request" show high - low =
170 tokens for it on gpt-4o). Other model families keep the formula and change the two constants
(gpt-4o-mini: 2833 and 5667), hence ``ImageTokenRates``.

Sizes come from the first bytes of a base64 data URL (PNG, JPEG, GIF, WEBP headers, parsed here
with the stdlib only). An http(s) URL's size is unknown without fetching it, which estimation never
does: such an image is counted at the largest tile count the formula allows, and the count is
marked not exact.
"""

from __future__ import annotations

import binascii
from typing import Final

import attrs

from guardedllm.errors import ArgumentError

__all__ = [
    "GPT_4O_IMAGE_RATES",
    "GPT_4O_MINI_IMAGE_RATES",
    "ImageTokenRates",
    "data_url_image_size",
    "image_size",
    "image_tokens",
    "max_image_tokens",
]

_FIT_SQUARE: Final = 2048  # first scale-down: the image must fit a 2048 x 2048 square
_SHORT_SIDE: Final = 768  # second scale-down: the shortest side at most 768 px
_TILE: Final = 512  # the tiles counted


@attrs.frozen(kw_only=True, cache_hash=True)  # a key of per-call caches
class ImageTokenRates:
    """The two constants of the tile formula for one model family."""

    base: int = attrs.field(validator=attrs.validators.ge(0))  # always paid; all of a low image
    per_tile: int = attrs.field(validator=attrs.validators.ge(0))  # per 512 px tile, high detail


# gpt-4o: the vision guide's figures. gpt-4o-mini: the same thread's measurements of a one-tile
# image plus ~12 text tokens, 2845 (low) and 8512 (high), give 2833 and 2833 + 5667.
GPT_4O_IMAGE_RATES: Final = ImageTokenRates(base=85, per_tile=170)
GPT_4O_MINI_IMAGE_RATES: Final = ImageTokenRates(base=2833, per_tile=5667)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _scaled_tiles(width: int, height: int) -> int:
    """Tiles of a ``width`` x ``height`` image after OpenAI's two scale-downs.

    Scaled sides are rounded up (integer arithmetic, no float drift), so where OpenAI's own
    rounding is unknown the estimate errs high, never low.
    """
    long_side, short_side = max(width, height), min(width, height)
    if long_side > _FIT_SQUARE:
        short_side = _ceil_div(short_side * _FIT_SQUARE, long_side)
        long_side = _FIT_SQUARE
    if short_side > _SHORT_SIDE:
        long_side = _ceil_div(long_side * _SHORT_SIDE, short_side)
        short_side = _SHORT_SIDE
    return _ceil_div(long_side, _TILE) * _ceil_div(short_side, _TILE)


def image_tokens(
    width: int, height: int, detail: str = "auto", rates: ImageTokenRates = GPT_4O_IMAGE_RATES
) -> int:
    """Input tokens of one ``width`` x ``height`` image at ``detail`` (low, high or auto)."""
    if width <= 0 or height <= 0:
        raise ArgumentError(f"image size must be positive, got {width} x {height}")
    if detail == "low":
        return rates.base
    return rates.base + rates.per_tile * _scaled_tiles(width, height)


# The most tiles any image can cost: after the scale-downs one side is at most 768 px (2 tiles)
# and the other at most 2048 px (4 tiles).
_MAX_TILES: Final = _ceil_div(_SHORT_SIDE, _TILE) * _ceil_div(_FIT_SQUARE, _TILE)


def max_image_tokens(detail: str = "auto", rates: ImageTokenRates = GPT_4O_IMAGE_RATES) -> int:
    """The most tokens one image of unknown size can cost at ``detail``."""
    if detail == "low":
        return rates.base
    return rates.base + rates.per_tile * _MAX_TILES


# --------------------------------------------------------------------------- header parsing

_PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers carry the size: C0-CF except C4 (DHT), C8 (JPG), CC (DAC).
_JPEG_SOF: Final = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers with no length field: TEM, RST0-7, SOI, EOI.
_JPEG_STANDALONE: Final = frozenset({0x01, *range(0xD0, 0xDA)})


class _Truncated:
    """The bytes end before the size field: read more and try again."""


_TRUNCATED: Final = _Truncated()

# Enough bytes for the PNG, GIF and every WEBP header; JPEG may need more (EXIF comes first).
_HEAD_BYTES: Final = 48
# A JPEG's size can sit behind large APPn segments (EXIF, ICC profiles): read growing prefixes.
_JPEG_FIRST_READ: Final = 4096


def image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from an image's first bytes; None if not PNG/JPEG/GIF/WEBP or cut short."""
    size = _parse_size(data)
    return None if isinstance(size, _Truncated) else size


def _parse_size(data: bytes) -> tuple[int, int] | _Truncated | None:
    if data.startswith(_PNG_SIGNATURE):
        # The IHDR chunk comes first: length(4) type(4) width(4) height(4), big-endian.
        if len(data) < 24:
            return _TRUNCATED
        if data[12:16] != b"IHDR":
            return None
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:6] in (b"GIF87a", b"GIF89a"):
        if len(data) < 10:
            return _TRUNCATED
        return int.from_bytes(data[6:8], "little"), int.from_bytes(data[8:10], "little")
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp_size(data)
    if data[:2] == b"\xff\xd8":
        return _jpeg_size(data)
    if len(data) < 12:
        return _TRUNCATED
    return None


def _webp_size(data: bytes) -> tuple[int, int] | _Truncated | None:
    if len(data) < 30:
        return _TRUNCATED
    chunk = data[12:16]
    if chunk == b"VP8 ":
        # Lossy: frame tag (3 bytes), start code 9D 01 2A, then 14-bit width and height.
        if data[23:26] != b"\x9d\x01\x2a":
            return None
        width = int.from_bytes(data[26:28], "little") & 0x3FFF
        height = int.from_bytes(data[28:30], "little") & 0x3FFF
        return width, height
    if chunk == b"VP8L":
        # Lossless: signature 0x2F, then width-1 and height-1 as 14-bit little-endian fields.
        if data[20] != 0x2F:
            return None
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        # Extended: flags(4), then canvas width-1 and height-1 as 24-bit little-endian.
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | _Truncated | None:
    # Walk the segments after SOI until a start-of-frame: FF <marker> <length BE16> <payload>.
    pos = 2
    end = len(data)
    while True:
        while pos < end and data[pos] == 0xFF and pos + 1 < end and data[pos + 1] == 0xFF:
            pos += 1  # fill bytes before a marker
        if pos + 4 > end:
            return _TRUNCATED
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker in _JPEG_STANDALONE:
            pos += 2
            continue
        if marker == 0xDA:  # start of scan before any frame header: not a valid JPEG
            return None
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if length < 2:
            return None
        if marker in _JPEG_SOF:
            # Payload: precision(1), height(2), width(2).
            if pos + 9 > end:
                return _TRUNCATED
            height = int.from_bytes(data[pos + 5 : pos + 7], "big")
            width = int.from_bytes(data[pos + 7 : pos + 9], "big")
            return width, height
        pos += 2 + length


def data_url_image_size(url: str) -> tuple[int, int] | None:
    """Width and height of the image in a base64 ``data:`` URL, decoding only its first bytes.

    None when the URL is not base64, the image format is not PNG/JPEG/GIF/WEBP, or the header is
    malformed: the caller then counts the image at its worst case.
    """
    comma = url.find(",")
    if comma < 0 or not url[:comma].endswith(";base64"):
        return None
    payload_start = comma + 1
    want = _HEAD_BYTES
    while True:
        # 4 base64 characters carry 3 bytes; decode a prefix cut on that boundary.
        chars = _ceil_div(want, 3) * 4
        chunk = url[payload_start : payload_start + chars]
        try:
            head = binascii.a2b_base64(chunk)
        except ValueError:  # binascii.Error, or a non-ASCII character
            return None  # whitespace, padding or junk in the prefix: not worth a slower path
        size = _parse_size(head)
        if not isinstance(size, _Truncated):
            if size is None or size[0] <= 0 or size[1] <= 0:
                return None
            return size
        if payload_start + chars >= len(url):
            return None  # the whole image is shorter than its own header
        want = max(_JPEG_FIRST_READ, want * 4)
