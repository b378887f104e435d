"""Every wire format's readers (OpenAI, Azure OpenAI, Anthropic, Gemini) against hostile bytes.

Bodies, error bodies and event streams start as the vendor sends them (``FakeProvider``'s
reply builders) and are broken by ``_wire``'s strategies: in their JSON (absurd counts, NaN,
nesting thousands deep), their events and their bytes (invalid UTF-8, CR / lone CR line ends,
missing blank lines, long lines), then fed to a stream decoder in reads cut anywhere. The
properties, for any input:

- ``parse_response`` returns a well-formed ``ChatCompletion`` (``_checks``: typed fields,
  OpenAI finish reasons, token counts that are counts) or raises a ``GuardedLLMError``;
- ``parse_error`` returns a ``ProviderError`` for the status it was given, whatever the body
  and headers, and never raises;
- ``stream_decoder(...).feed`` / ``close`` yield well-formed chunks and usage or raise a
  ``GuardedLLMError``, and a ``close`` that returns means the terminal event came.

Anything else escaping (``RecursionError``, ``OverflowError``, ``ValueError``...) fails the test
with the input that caused it.
"""

from __future__ import annotations

import math

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzz._checks import check_chunk, check_completion, check_usage
from fuzz._profiles import fuzz
from fuzz._wire import (
    KINDS,
    TARGETS,
    VENDORS,
    Vendor,
    error_bodies,
    error_headers,
    feeds,
    response_bodies,
    stream_bodies,
)
from guardedllm.errors import GuardedLLMError, ProviderError
from guardedllm.providers import wire_format_for
from guardedllm.types import ChatCompletionChunk

NOW = 1_750_000_000.0  # Unix time for HTTP-date Retry-After values

vendors = pytest.mark.parametrize("vendor", VENDORS)


@vendors
@fuzz(80)
@given(data=st.data())
def test_a_body_parses_into_a_well_formed_answer_or_a_guardedllm_error(
    vendor: Vendor, data: st.DataObject
) -> None:
    body = data.draw(response_bodies(vendor), label="body")
    try:
        completion = wire_format_for(KINDS[vendor]).parse_response(body, TARGETS[vendor])
    except GuardedLLMError:
        return
    check_completion(completion)


@vendors
@fuzz(60)
@given(data=st.data())
def test_an_error_answer_always_gives_a_provider_error(vendor: Vendor, data: st.DataObject) -> None:
    status, body = data.draw(error_bodies(vendor), label="status and body")
    headers = httpx.Headers(data.draw(error_headers(), label="headers"))
    error = wire_format_for(KINDS[vendor]).parse_error(
        status, headers, body, TARGETS[vendor], now=NOW
    )
    assert isinstance(error, ProviderError), error
    assert error.status == status
    wait = error.retry_after
    assert wait is None or (not math.isnan(wait) and wait >= 0), f"retry_after is {wait}"


@vendors
@fuzz(80)
@given(data=st.data())
def test_a_stream_decodes_into_well_formed_chunks_or_a_guardedllm_error(
    vendor: Vendor, data: st.DataObject
) -> None:
    body = data.draw(stream_bodies(vendor), label="stream")
    reads = data.draw(feeds(body), label="reads")
    decoder = wire_format_for(KINDS[vendor]).stream_decoder(TARGETS[vendor])
    chunks: list[ChatCompletionChunk] = []
    try:
        for read in reads:
            chunks += decoder.feed(read)
        chunks += decoder.close()
    except GuardedLLMError:
        pass
    else:
        assert decoder.done, "close() returned, yet the stream's terminal event never came"
    for chunk in chunks:
        check_chunk(chunk)
    check_usage(decoder.usage, "decoder.usage")
