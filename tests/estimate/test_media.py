"""Upper bounds for audio, video and file parts: never about zero, never exact, always noted.

The figures: a 10 s WAV at 16 kHz, 16-bit mono is 320,000 bytes of samples behind a 44-byte
header, so its duration bound is (320,044 + base64 rounding) / 32,000 B/s, just over 10 s;
at OpenAI's 10 tokens a second that is 101 tokens, at Gemini's 32, 321.
"""

from __future__ import annotations

import base64
import struct
from typing import Any

import pytest
import tiktoken

from guardedllm.estimate import (
    GEMINI_MEDIA_RATES,
    MEDIA_RATES_CEILING,
    OPENAI_MEDIA_RATES,
    Prices,
    count_chat_tokens,
    estimate_request,
    get_encoding,
)

FRAMING = 3 + 1 + 3  # one user message: its framing, "user", the reply's priming


@pytest.fixture
def encoding() -> tiktoken.Encoding:
    return get_encoding("o200k_base")


def wav(seconds: int, rate: int = 16_000) -> str:
    samples = b"\0" * (rate * 2 * seconds)
    fmt = struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
    header = b"RIFF" + struct.pack("<I", 36 + len(samples)) + b"WAVE" + b"fmt " + fmt
    header += b"data" + struct.pack("<I", len(samples))
    return base64.b64encode(header + samples).decode()


def pdf(pages: int, padding: int = 300_000) -> str:
    objects = b"".join(
        b"%d 0 obj <</Type /Page /Parent 2 0 R>> endobj\n" % (3 + i) for i in range(pages)
    )
    tree = b"2 0 obj <</Type /Pages /Kids [] /Count %d>> endobj\n" % pages
    body = b"%PDF-1.4\n" + objects + tree + b"stream\n" + b"x" * padding + b"\nendstream\n"
    return "data:application/pdf;base64," + base64.b64encode(body).decode()


def user(*parts: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"role": "user", "content": list(parts)}]


def audio(data: str, fmt: str = "wav") -> dict[str, Any]:
    return {"type": "input_audio", "input_audio": {"data": data, "format": fmt}}


def file(data: str) -> dict[str, Any]:
    return {"type": "file", "file": {"file_data": data, "filename": "doc"}}


@pytest.mark.parametrize(
    ("rates", "tokens"), [(OPENAI_MEDIA_RATES, 101), (GEMINI_MEDIA_RATES, 321)]
)
def test_wav_duration_from_its_header(encoding: tiktoken.Encoding, rates: Any, tokens: int) -> None:
    count = count_chat_tokens(user(audio(wav(10))), encoding=encoding, media_rates=rates)
    assert count.tokens == FRAMING + tokens
    assert not count.exact
    assert "WAV header" in count.notes[0]
    assert f"{rates.audio_per_s} tokens per second" in count.notes[0]


def test_mp3_is_bounded_by_its_size_at_the_lowest_bitrate(encoding: tiktoken.Encoding) -> None:
    # 10 s at 128 kbit/s: 160,000 bytes, at most 160 s at 8 kbit/s.
    data = base64.b64encode(b"\xff\xfb" + b"\0" * 159_998).decode()
    count = count_chat_tokens(
        user(audio(data, "mp3")), encoding=encoding, media_rates=GEMINI_MEDIA_RATES
    )
    assert count.tokens == FRAMING + 160 * 32
    assert "lowest bitrate" in count.notes[0]


def test_a_pdf_counts_its_pages(encoding: tiktoken.Encoding) -> None:
    count = count_chat_tokens(user(file(pdf(3))), encoding=encoding)
    assert count.tokens == FRAMING + 3 * MEDIA_RATES_CEILING.pdf_per_page
    assert not count.exact
    assert not count.fills_window
    assert "3 pages read from its page objects" in count.notes[0]


def test_a_pdf_with_compressed_pages_is_bounded_by_the_window(
    encoding: tiktoken.Encoding,
) -> None:
    body = b"%PDF-1.5\n1 0 obj <</Type /ObjStm /N 40>> stream\n" + b"\x78\x9c" * 1000
    data = "data:application/pdf;base64," + base64.b64encode(body).decode()
    count = count_chat_tokens(user(file(data)), encoding=encoding)
    assert count.fills_window
    assert not count.exact


def test_video_is_bounded_by_its_size(encoding: tiktoken.Encoding) -> None:
    # 80,000 bytes: at most 10 s at 64 kbit/s, 263 tokens each.
    data = "data:video/mp4;base64," + base64.b64encode(b"\0" * 80_000).decode()
    count = count_chat_tokens(user(file(data)), encoding=encoding, media_rates=GEMINI_MEDIA_RATES)
    assert count.tokens == FRAMING + 2_630
    assert "video" in count.notes[0]


def test_a_text_file_counts_a_token_a_byte(encoding: tiktoken.Encoding) -> None:
    data = "data:text/plain;base64," + base64.b64encode(b"a" * 3000).decode()
    count = count_chat_tokens(user(file(data)), encoding=encoding)
    assert count.tokens == FRAMING + 3000


@pytest.mark.parametrize(
    "part",
    [
        {"type": "file", "file": {"file_id": "file-abc123"}},
        {"type": "video_url", "video_url": {"url": "https://example.com/v.mp4"}},
        file("data:application/zip;base64,UEsDBA=="),
    ],
)
def test_unreadable_parts_fill_the_window(
    encoding: tiktoken.Encoding, part: dict[str, Any]
) -> None:
    count = count_chat_tokens(user(part), encoding=encoding)
    assert count.fills_window
    assert not count.exact
    assert "context window" in count.notes[0]
    # The estimate bills the whole window: the output's share, and the input all the rest.
    estimate = estimate_request(
        user(part),
        max_tokens=1_000,
        deployment_name="gpt-4o-mini",
        tokenizer="o200k_base",
        context_window=128_000,
        max_output_tokens=16_384,
        prices=Prices(input_usd_per_mtok=0.15, output_usd_per_mtok=0.60),
    )
    assert estimate.input_tokens == 127_000
    assert estimate.fits_context
    assert not estimate.exact
