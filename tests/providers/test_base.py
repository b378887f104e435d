"""What every wire format shares: the request builder (the same request httpx.Request builds),
the reading of Retry-After, the JSON reader, and the usage counts every reader builds."""

from __future__ import annotations

import json
import math

import attrs
import httpx
import pytest

from guardedllm import defaults
from guardedllm.errors import (
    AuthenticationError,
    InvalidRequestError,
    RateLimitedError,
    ResponseFormatError,
    ServerError,
)
from guardedllm.providers.anthropic import AnthropicWire
from guardedllm.providers.base import Target, load_json, post_request, retry_after_seconds
from guardedllm.providers.gemini import GeminiWire
from guardedllm.providers.openai import AzureOpenAIWire, OpenAIWire
from guardedllm.types import ChatRequest, Usage
from wire_bodies import answer_and_stream


def _target(base_url: str) -> Target:
    return Target(
        deployment="d", provider="p", kind="openai", base_url=base_url, model="m", api_key="k"
    )


@pytest.mark.parametrize(
    ("base_url", "path", "params", "headers"),
    [
        ("https://api.openai.com/v1", "chat/completions", None, [("content-type", "a/b")]),
        ("https://api.openai.com/v1/", "/chat/completions", None, []),
        ("http://127.0.0.1:8080", "v1/messages", None, [("X-Api-Key", "k"), ("x-api-key", "j")]),
        ("https://x.example/openai", "deployments/a%2Fb/chat", {"api-version": "2024"}, []),
        ("https://x.example", "v1beta/models/m:generateContent", {}, [("accept", "*/*")]),
        ("https://x.example", "p", {"alt": "sse", "q": "a b"}, [("accept", "text/event-stream")]),
        ("https://bücher.example/v1", "chat", None, []),
        # Headers httpx works out itself, set by a provider's config: httpx's rules apply.
        ("https://x.example", "p", None, [("Host", "other.example")]),
        ("https://x.example", "p", None, [("content-length", "3")]),
        ("https://x.example", "p", None, [("transfer-encoding", "chunked")]),
    ],
)
def test_post_request_builds_what_httpx_request_builds(
    base_url: str, path: str, params: dict[str, str] | None, headers: list[tuple[str, str]]
) -> None:
    target = _target(base_url)
    content = b'{"model":"m"}'
    built = post_request(target, path, params=params, headers=headers, content=content)
    expected = httpx.Request(
        "POST", target.url(path), params=params, headers=headers, content=content
    )
    assert built.url == expected.url
    assert built.headers.raw == expected.headers.raw
    assert built.content == expected.content == content
    assert built.method == "POST"
    assert b"".join(built.stream) == content


def test_a_header_httpx_cannot_encode_is_refused_as_httpx_refuses_it() -> None:
    with pytest.raises(UnicodeEncodeError):
        post_request(_target("https://x.example"), "p", headers=[("x-name", "é")], content=b"")


# --------------------------------------------------------------------------- Retry-After

NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": " 2.5 "}, 2.5),
        ({"retry-after": "0"}, 0.0),
        ({"retry-after-ms": "1500", "retry-after": "7"}, 1.5),
        ({"retry-after": "Tue, 14 Nov 2023 22:13:30 GMT"}, 10.0),
        ({"retry-after": "Tue, 14 Nov 2023 22:13:00 GMT"}, 0.0),  # passed: no wait
        # Faithful, however long: how much of it to honour is the guards' decision.
        ({"retry-after": "999999"}, 999_999.0),
        ({"retry-after": "Fri, 31 Dec 9999 23:59:59 GMT"}, 253_402_300_799.0 - NOW),
        # Not a finite number of seconds: ignored, and the other header speaks.
        ({"retry-after-ms": "inf", "retry-after": "3"}, 3.0),
        ({"retry-after-ms": "nan", "retry-after": "3"}, 3.0),
        ({"retry-after-ms": "-1", "retry-after": "3"}, 3.0),
        ({"retry-after-ms": "soon", "retry-after": "3"}, 3.0),
        ({"retry-after": "inf"}, None),
        ({"retry-after": "-Infinity"}, None),
        ({"retry-after": "NaN"}, None),
        ({"retry-after": "1e400"}, None),
        ({"retry-after": "9" * 400}, None),
        ({"retry-after": "-5"}, None),
        ({"retry-after": "Fri, 31 Dec 99999 23:59:59 GMT"}, None),  # no datetime holds it
        ({"retry-after": "Mon, 32 Dec 2023 00:00:00 GMT"}, None),
        ({"retry-after": "Fri, 31 Dec 9999 23:59:59 -0000"}, 253_402_300_799.0 - NOW),
        ({"retry-after": "later"}, None),
        ({}, None),
    ],
)
def test_retry_after_is_the_vendors_wait_and_always_finite(
    headers: dict[str, str], seconds: float | None
) -> None:
    parsed = retry_after_seconds(httpx.Headers(headers), now=NOW)
    if seconds is None:
        assert parsed is None
    else:
        assert parsed == pytest.approx(seconds, abs=1e-6)
        assert math.isfinite(parsed)


# --------------------------------------------------------------------------- JSON nested too deep

# Far deeper than the interpreter's recursion limit: json.loads raises RecursionError on it.
DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize("text", [DEEP, DEEP.decode(), b'{"a": ' + DEEP + b"}"])
def test_json_nested_too_deep_is_malformed_json(text: str | bytes) -> None:
    with pytest.raises(ValueError, match="nested too deeply"):
        load_json(text)


@pytest.mark.parametrize("text", ['{"a": [1, 2.5, null]}', " [] ", b'{"x": "\\u00e9"}', "1"])
def test_load_json_reads_what_json_loads_reads(text: str | bytes) -> None:
    assert load_json(text) == json.loads(text)


WIRES = {
    "openai": OpenAIWire(),
    "azure-openai": AzureOpenAIWire(),
    "anthropic": AnthropicWire(),
    "gemini": GeminiWire(),
}


@pytest.mark.parametrize("kind", sorted(WIRES))
def test_every_wire_format_reads_json_nested_too_deep_as_malformed(kind: str) -> None:
    wire, target = WIRES[kind], attrs.evolve(_target("https://x.example"), kind=kind)
    with pytest.raises(ResponseFormatError, match="nested too deeply"):
        wire.parse_response(DEEP, target)
    decoder = wire.stream_decoder(target)
    with pytest.raises(ResponseFormatError):
        decoder.feed(b"data: " + DEEP + b"\n\n")
    # An error body that cannot be read still gives its status's class.
    for status, expected in [
        (503, ServerError),
        (401, AuthenticationError),
        (429, RateLimitedError),
    ]:
        error = wire.parse_error(status, httpx.Headers(), DEEP, target, now=0.0)
        assert type(error) is expected


@pytest.mark.parametrize("kind", ["anthropic", "gemini"])
def test_tool_arguments_nested_too_deep_are_an_invalid_request(kind: str) -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": DEEP.decode()}}
    request = ChatRequest(
        model="m",
        messages=(
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "c1", "content": "ok"},
        ),
    )
    target = attrs.evolve(_target("https://x.example"), kind=kind, max_output_tokens=10)
    with pytest.raises(InvalidRequestError):
        WIRES[kind].build_request(request, target)


@pytest.mark.parametrize("kind", sorted(WIRES))
def test_a_request_shows_no_key_in_its_repr(kind: str) -> None:
    # httpx masks Authorization only; Azure's api-key, Anthropic's x-api-key and Gemini's
    # x-goog-api-key would be printed whole with a request (say ``stream.response.request``).
    key = "0123456789abcdef0123456789abcdef"
    target = attrs.evolve(
        _target("https://x.example"),
        kind=kind,
        api_key=key,
        max_output_tokens=10,
        api_version="2024-10-21" if kind == "azure-openai" else None,
    )
    request = WIRES[kind].build_request(
        ChatRequest(model="m", messages=({"role": "user", "content": "hi"},)), target
    )
    assert key not in repr(request.headers)
    assert "[secure]" in repr(request.headers)
    assert key in str(dict(request.headers))  # masked when shown, sent as it is
    request.headers["x-team"] = "search"  # still an httpx.Headers to the transport
    assert "'x-team': 'search'" in repr(request.headers)


# --------------------------------------------------------------------------- usage counts


NONSENSE_COUNTS = [(-1_000_000, 5), (12, -1), (12, 10**18), (10**400, 5), (2**64 - 1, 0)]


@pytest.mark.parametrize("kind", sorted(WIRES))
@pytest.mark.parametrize(("prompt", "completion"), NONSENSE_COUNTS)
def test_counts_no_vendor_could_bill_read_as_no_usage(
    kind: str, prompt: int, completion: int
) -> None:
    wire, target = WIRES[kind], attrs.evolve(_target("https://x.example"), kind=kind)
    answer, stream = answer_and_stream(kind, prompt, completion)
    completion_ = wire.parse_response(answer, target)
    assert completion_.choices[0].message.content == "hi"  # the answer stands
    assert completion_.usage is None
    decoder = wire.stream_decoder(target)
    chunks = decoder.feed(stream) + decoder.close()
    assert decoder.done
    assert decoder.usage is None
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "hi"
    assert all(c.choices for c in chunks)  # no usage chunk without usage


@pytest.mark.parametrize("kind", sorted(WIRES))
def test_counts_up_to_the_ceiling_are_the_usage(kind: str) -> None:
    wire, target = WIRES[kind], attrs.evolve(_target("https://x.example"), kind=kind)
    answer, stream = answer_and_stream(kind, 12, defaults.MAX_USAGE_TOKENS)
    assert wire.parse_response(answer, target).usage == Usage.of(12, defaults.MAX_USAGE_TOKENS)
    decoder = wire.stream_decoder(target)
    chunks = decoder.feed(stream) + decoder.close()
    assert decoder.usage == chunks[-1].usage == Usage.of(12, defaults.MAX_USAGE_TOKENS)


def test_usage_reported_in_parts_is_checked_part_by_part() -> None:
    # Anthropic's prompt is its input plus cache reads and writes: a negative part is nonsense
    # even when the sum looks sane, and parts within the ceiling may add up past it.
    assert Usage.reported((-5, 10, 0), (1,), cached_tokens=10) is None
    ceiling = defaults.MAX_USAGE_TOKENS
    assert Usage.reported((ceiling, 1), (1,)) is None
    assert Usage.reported((1,), (1,), reasoning_tokens=-1) is None
    assert Usage.reported((5, 10, 0), (3, 4), cached_tokens=10, reasoning_tokens=4) == Usage.of(
        15, 7, cached_tokens=10, reasoning_tokens=4
    )
