"""Upper bounds on the input tokens of audio, video and file parts, which no tokenizer counts.

A vendor turns a media part into tokens at a published rate: per second of audio or video, per
page of a PDF. The duration or page count is read from the part itself where its first bytes
say it (a WAV header gives the exact duration; a PDF lists its page objects), else bounded by
its size (an mp3 cannot hold more seconds than its bytes at the lowest bitrate MPEG defines).
What cannot be read at all (an OpenAI ``file_id``, a part type nobody documents) is bounded by
the deployment's context window: a vendor cannot bill more input than its window holds, so the
estimate counts such a part as all of the window the rest of the request leaves free.

Every figure here errs high and says so in a note: a budget or cap that reserves too much
refuses a call it could have afforded, one that reserves too little overspends.

The rates differ by vendor (Gemini counts 32 tokens per second of audio, OpenAI 10), so they
are a value, ``MediaTokenRates``, chosen per deployment as ``ImageTokenRates`` is; the default
is the largest of the vendors' figures, for a deployment whose vendor is not known.
"""

from __future__ import annotations

import binascii
import math
import re
from collections.abc import Mapping
from typing import Any, Final

import attrs

from guardedllm import defaults

__all__ = [
    "ANTHROPIC_MEDIA_RATES",
    "GEMINI_MEDIA_RATES",
    "MEDIA_RATES_CEILING",
    "OPENAI_MEDIA_RATES",
    "MediaBound",
    "MediaTokenRates",
    "audio_part_bound",
    "file_part_bound",
]

_positive = attrs.validators.gt(0)


@attrs.frozen(kw_only=True, cache_hash=True)  # a key of per-call caches
class MediaTokenRates:
    """One vendor's input tokens per second of audio and of video, and per PDF page."""

    audio_per_s: int = attrs.field(validator=_positive)
    video_per_s: int = attrs.field(validator=_positive)
    pdf_per_page: int = attrs.field(validator=_positive)
    # Whose figures, as notes say it: "at OpenAI's 10 tokens per second".
    vendor: str = "the vendors' largest"


# OpenAI: "Audio tokens in user messages are 1 token per 100 ms of audio" (Realtime API costs
# guide, developers.openai.com/api/docs/guides/realtime-costs; Chat Completions audio models
# share the tokenizer). A PDF page is sent as its extracted text and an image of the page (file
# inputs guide): the text at Anthropic's published top of 3,000 tokens a page, the image at the
# most a gpt-4o image of any size costs (85 + 8 tiles x 170 = 1,445). Chat Completions takes no
# video: the ceiling's rate, so a video part is never counted low.
OPENAI_MEDIA_RATES: Final = MediaTokenRates(
    audio_per_s=10,
    video_per_s=defaults.MEDIA_VIDEO_TOKENS_PER_S,
    pdf_per_page=defaults.PDF_TEXT_TOKENS_PER_PAGE + 1_445,
    vendor="OpenAI's",
)
# Gemini: "Gemini represents each second of audio as 32 tokens"; video at 263 tokens per second
# (ai.google.dev/gemini-api/docs/tokens); a PDF page is one image, 258 tokens on Gemini 2 and
# 560 at Gemini 3's default media resolution for PDFs (ai.google.dev/gemini-api/docs/
# media-resolution): the larger.
GEMINI_MEDIA_RATES: Final = MediaTokenRates(
    audio_per_s=32, video_per_s=263, pdf_per_page=560, vendor="Gemini's"
)
# Anthropic: a PDF page is its text, "typically 1,500-3,000 tokens per page", plus an image of
# the page at vision prices, at most ~1,600 tokens for an image at the 1.15-megapixel size
# Claude scales to (docs.anthropic.com, "PDF support" and "Vision"). Claude takes no audio or
# video: the ceiling's rates.
ANTHROPIC_MEDIA_RATES: Final = MediaTokenRates(
    audio_per_s=32,
    video_per_s=defaults.MEDIA_VIDEO_TOKENS_PER_S,
    pdf_per_page=defaults.PDF_TEXT_TOKENS_PER_PAGE + 1_600,
    vendor="Anthropic's",
)
# Any other vendor (an OpenAI-compatible server): the largest figure of each kind above.
MEDIA_RATES_CEILING: Final = MediaTokenRates(
    audio_per_s=32,
    video_per_s=defaults.MEDIA_VIDEO_TOKENS_PER_S,
    pdf_per_page=defaults.PDF_TEXT_TOKENS_PER_PAGE + 1_600,
)


@attrs.frozen(kw_only=True)
class MediaBound:
    """The most tokens one part can cost (``tokens``), or ``rest_of_window``: the part cannot be
    read, and only the context window bounds it. ``note`` says what was assumed."""

    tokens: int = attrs.field(default=0, validator=attrs.validators.ge(0))
    rest_of_window: bool = False
    note: str


_AUDIO_MIME: Final = {"wav": "audio/wav", "mp3": "audio/mpeg"}
# The lowest bitrate MPEG audio defines (MPEG-2.5 Layer III, 8 kbit/s), in bytes per second:
# no mp3 holds more seconds than this many bytes allow.
_MP3_MIN_BYTES_PER_S: Final = 8_000 // 8


def audio_part_bound(part: Mapping[str, Any], rates: MediaTokenRates) -> MediaBound:
    """The most tokens an ``input_audio`` part costs: its duration times the vendor's rate."""
    audio = part.get("input_audio")
    data = audio.get("data") if isinstance(audio, Mapping) else None
    fmt = audio.get("format") if isinstance(audio, Mapping) else None
    if not isinstance(data, str):
        return _unreadable("an input_audio part without base64 data")
    return _audio_bound(data, str(fmt), rates)


def file_part_bound(part: Mapping[str, Any], rates: MediaTokenRates) -> MediaBound:
    """The most tokens a ``file`` part costs, from its media type and bytes."""
    file = part.get("file")
    data = file.get("file_data") if isinstance(file, Mapping) else None
    if not isinstance(data, str):
        return _unreadable("a file part sent by file_id (its size is unknown here)")
    header, comma, payload = data.partition(",")
    if not (comma and header.startswith("data:") and header.endswith(";base64")):
        return _unreadable("a file part whose file_data is not a base64 data URL")
    mime = header.removeprefix("data:").split(";", 1)[0].lower()
    if mime == "application/pdf":
        return _pdf_bound(payload, rates)
    if mime.startswith("audio/"):
        fmt = "wav" if mime in ("audio/wav", "audio/x-wav", "audio/wave") else mime
        return _audio_bound(payload, fmt, rates)
    if mime.startswith("video/"):
        return _video_bound(payload, rates)
    if mime.startswith("text/"):
        size = _decoded_size(payload)
        # Every token of a tiktoken-style tokenizer covers at least one byte of text.
        return MediaBound(tokens=size, note=f"a {mime} file counted at one token per byte")
    return _unreadable(f"a {mime or 'untyped'} file part")


def _unreadable(what: str) -> MediaBound:
    return MediaBound(
        rest_of_window=True,
        note=f"{what} counted as all of the context window the rest of the request leaves",
    )


def _decoded_size(payload: str) -> int:
    """Bytes of a base64 payload, from its length alone (whitespace counted as data: high)."""
    return len(payload.rstrip("=")) * 3 // 4


def _head(payload: str, size: int) -> bytes:
    chars = -(-size // 3) * 4
    try:
        return binascii.a2b_base64(payload[:chars])
    except ValueError:  # binascii.Error, or a non-ASCII character
        return b""


def _audio_bound(payload: str, fmt: str, rates: MediaTokenRates) -> MediaBound:
    size = _decoded_size(payload)
    byte_rate = _wav_byte_rate(_head(payload, 64)) if fmt == "wav" else None
    if byte_rate is not None:
        # The samples are at most the whole file: the header only makes the sound shorter.
        seconds = size / byte_rate
        how = "its WAV header's byte rate"
    else:
        seconds = size / _MP3_MIN_BYTES_PER_S
        how = "its size at MPEG audio's lowest bitrate (8 kbit/s)"
    tokens = math.ceil(seconds * rates.audio_per_s)
    return MediaBound(
        tokens=tokens,
        note=(
            f"audio counted at {rates.vendor} {rates.audio_per_s} tokens per second, its "
            f"duration bounded by {how}"
        ),
    )


def _wav_byte_rate(head: bytes) -> int | None:
    """Bytes per second of audio from a canonical WAV header (RIFF, WAVE, then "fmt ")."""
    if len(head) < 32 or head[:4] != b"RIFF" or head[8:12] != b"WAVE" or head[12:16] != b"fmt ":
        return None
    byte_rate = int.from_bytes(head[28:32], "little")
    return byte_rate if byte_rate > 0 else None


def _video_bound(payload: str, rates: MediaTokenRates) -> MediaBound:
    seconds = _decoded_size(payload) / defaults.MEDIA_VIDEO_MIN_BYTES_PER_S
    return MediaBound(
        tokens=math.ceil(seconds * rates.video_per_s),
        note=(
            f"video counted at {rates.vendor} {rates.video_per_s} tokens per second, its "
            f"duration bounded by its size at {defaults.MEDIA_VIDEO_MIN_BYTES_PER_S * 8 // 1000}"
            " kbit/s"
        ),
    )


# A page object's dictionary says /Type /Page (the page tree's nodes say /Pages); the root of
# the page tree says how many pages there are in /Count.
_PAGE: Final = re.compile(rb"/Type\s*/Page(?![A-Za-z])")
_COUNT: Final = re.compile(rb"/Count\s+(\d{1,9})")
_OBJECT_STREAM: Final = b"/ObjStm"


def _pdf_bound(payload: str, rates: MediaTokenRates) -> MediaBound:
    try:
        data = binascii.a2b_base64(payload)
    except ValueError:
        return _unreadable("a PDF file part whose base64 does not decode")
    pages = len(_PAGE.findall(data))
    counts = [int(found) for found in _COUNT.findall(data)]
    if counts:
        pages = max(pages, *counts)
    elif pages == 0 or _OBJECT_STREAM in data:
        # Page objects inside compressed object streams cannot be counted, and a compressed
        # page takes a few dozen bytes, so the file's size bounds nothing useful: the window.
        return _unreadable("a PDF whose pages are not readable (compressed object streams)")
    return MediaBound(
        tokens=pages * rates.pdf_per_page,
        note=(
            f"PDF counted at {rates.vendor} {rates.pdf_per_page} tokens a page, {pages} "
            "pages read from its page objects"
        ),
    )
