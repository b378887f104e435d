"""A client's estimate of audio and PDF parts is an upper bound at the deployment's vendor's
rates, not the few tokens of their framing (a 10 s WAV and a 300 kB PDF were 9 and 10)."""

from __future__ import annotations

import base64
import struct

import anyio
import pytest

from guardedllm import AsyncClient, Client, Registry
from guardedllm.estimate import GEMINI_MEDIA_RATES, OPENAI_MEDIA_RATES, MediaTokenRates
from guardedllm.testing import FakeProvider
from support import ENVIRON


def ten_second_wav() -> str:
    rate = 16_000
    samples = b"\0" * (rate * 2 * 10)
    fmt = struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
    header = b"RIFF" + struct.pack("<I", 36 + len(samples)) + b"WAVEfmt " + fmt
    header += b"data" + struct.pack("<I", len(samples))
    return base64.b64encode(header + samples).decode()


def two_page_pdf() -> str:
    pages = b"".join(b"%d 0 obj <</Type /Page /Parent 2 0 R>> endobj\n" % n for n in (3, 4))
    body = b"%PDF-1.4\n" + pages + b"stream\n" + b"x" * 300_000 + b"\nendstream\n"
    return "data:application/pdf;base64," + base64.b64encode(body).decode()


MESSAGES = [
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "Summarise the call and the contract."},
            {"type": "input_audio", "input_audio": {"data": ten_second_wav(), "format": "wav"}},
            {"type": "file", "file": {"file_data": two_page_pdf(), "filename": "contract.pdf"}},
        ],
    }
]


@pytest.mark.parametrize(
    ("deployment", "rates"),
    [("gpt-4o-mini", OPENAI_MEDIA_RATES), ("gemini-flash", GEMINI_MEDIA_RATES)],
)
def test_media_is_estimated_at_the_vendors_rates(
    registry: Registry, fake_provider: FakeProvider, deployment: str, rates: MediaTokenRates
) -> None:
    with Client(registry, environ=ENVIRON) as client:
        estimate = client.estimate(model=deployment, messages=MESSAGES, max_tokens=100)
    media = 10 * rates.audio_per_s + 2 * rates.pdf_per_page
    assert estimate.input_tokens >= media
    assert not estimate.exact
    assert any("audio counted at" in note for note in estimate.notes)
    assert any("2 pages read from its page objects" in note for note in estimate.notes)


def test_a_file_id_is_bounded_by_the_window(
    registry: Registry, fake_provider: FakeProvider
) -> None:
    messages = [{"role": "user", "content": [{"type": "file", "file": {"file_id": "file-1"}}]}]

    async def main() -> tuple[int, int, bool]:
        async with AsyncClient(registry, environ=ENVIRON) as client:
            estimate = await client.estimate(model="gpt-4o-mini", messages=messages, max_tokens=100)
        return estimate.input_tokens, estimate.max_output_tokens, estimate.fits_context

    input_tokens, output_tokens, fits = anyio.run(main, backend="trio")
    window = registry.deployment("gpt-4o-mini").context_window
    assert input_tokens + output_tokens == window
    assert fits
    assert fake_provider.requests == []
