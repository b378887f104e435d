"""The names we emit match the semantic conventions, and the small mappings behind them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.semconv._incubating.metrics import gen_ai_metrics
from opentelemetry.semconv.attributes import (
    error_attributes,
    exception_attributes,
    http_attributes,
    server_attributes,
)

from guardedllm.errors import (
    AllRoutesFailedError,
    ConnectError,
    OverloadedError,
    ProviderError,
    RateLimitedError,
)
from guardedllm.registry._model import PROVIDER_KINDS
from guardedllm.telemetry import _semconv as sc

# Our constants next to those of opentelemetry-semantic-conventions (the SDK's dependency, so
# present where tests run; the library itself spells them out to depend on the API alone).
SAME_NAMES = [
    (sc.GEN_AI_OPERATION_NAME, gen_ai.GEN_AI_OPERATION_NAME),
    (sc.GEN_AI_PROVIDER_NAME, gen_ai.GEN_AI_PROVIDER_NAME),
    (sc.GEN_AI_REQUEST_MODEL, gen_ai.GEN_AI_REQUEST_MODEL),
    (sc.GEN_AI_REQUEST_MAX_TOKENS, gen_ai.GEN_AI_REQUEST_MAX_TOKENS),
    (sc.GEN_AI_REQUEST_TEMPERATURE, gen_ai.GEN_AI_REQUEST_TEMPERATURE),
    (sc.GEN_AI_REQUEST_TOP_P, gen_ai.GEN_AI_REQUEST_TOP_P),
    (sc.GEN_AI_REQUEST_STOP_SEQUENCES, gen_ai.GEN_AI_REQUEST_STOP_SEQUENCES),
    (sc.GEN_AI_REQUEST_SEED, gen_ai.GEN_AI_REQUEST_SEED),
    (sc.GEN_AI_REQUEST_STREAM, gen_ai.GEN_AI_REQUEST_STREAM),
    (sc.GEN_AI_REQUEST_CHOICE_COUNT, gen_ai.GEN_AI_REQUEST_CHOICE_COUNT),
    (sc.GEN_AI_REQUEST_FREQUENCY_PENALTY, gen_ai.GEN_AI_REQUEST_FREQUENCY_PENALTY),
    (sc.GEN_AI_REQUEST_PRESENCE_PENALTY, gen_ai.GEN_AI_REQUEST_PRESENCE_PENALTY),
    (sc.GEN_AI_OUTPUT_TYPE, gen_ai.GEN_AI_OUTPUT_TYPE),
    (sc.GEN_AI_RESPONSE_ID, gen_ai.GEN_AI_RESPONSE_ID),
    (sc.GEN_AI_RESPONSE_MODEL, gen_ai.GEN_AI_RESPONSE_MODEL),
    (sc.GEN_AI_RESPONSE_FINISH_REASONS, gen_ai.GEN_AI_RESPONSE_FINISH_REASONS),
    (sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, gen_ai.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK),
    (sc.GEN_AI_USAGE_INPUT_TOKENS, gen_ai.GEN_AI_USAGE_INPUT_TOKENS),
    (sc.GEN_AI_USAGE_OUTPUT_TOKENS, gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS),
    (sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, gen_ai.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS),
    (sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS, gen_ai.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS),
    (sc.GEN_AI_TOKEN_TYPE, gen_ai.GEN_AI_TOKEN_TYPE),
    (sc.GEN_AI_INPUT_MESSAGES, gen_ai.GEN_AI_INPUT_MESSAGES),
    (sc.GEN_AI_OUTPUT_MESSAGES, gen_ai.GEN_AI_OUTPUT_MESSAGES),
    (sc.SERVER_ADDRESS, server_attributes.SERVER_ADDRESS),
    (sc.SERVER_PORT, server_attributes.SERVER_PORT),
    (sc.ERROR_TYPE, error_attributes.ERROR_TYPE),
    (sc.HTTP_RESPONSE_STATUS_CODE, http_attributes.HTTP_RESPONSE_STATUS_CODE),
    (sc.EXCEPTION_TYPE, exception_attributes.EXCEPTION_TYPE),
    (sc.EXCEPTION_MESSAGE, exception_attributes.EXCEPTION_MESSAGE),
    (sc.METRIC_OPERATION_DURATION, gen_ai_metrics.GEN_AI_CLIENT_OPERATION_DURATION),
    (sc.METRIC_TOKEN_USAGE, gen_ai_metrics.GEN_AI_CLIENT_TOKEN_USAGE),
    (sc.METRIC_TIME_TO_FIRST_CHUNK, gen_ai_metrics.GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK),
    (
        sc.METRIC_TIME_PER_OUTPUT_CHUNK,
        gen_ai_metrics.GEN_AI_CLIENT_OPERATION_TIME_PER_OUTPUT_CHUNK,
    ),
]


@pytest.mark.parametrize(("ours", "theirs"), SAME_NAMES, ids=[name for name, _ in SAME_NAMES])
def test_our_names_are_the_conventions_names(ours: str, theirs: str) -> None:
    assert ours == theirs


def test_every_provider_kind_maps_to_a_well_known_provider_name() -> None:
    well_known = {value.value for value in gen_ai.GenAiProviderNameValues}
    for kind in PROVIDER_KINDS - {"openai-compatible"}:
        assert sc.provider_name(kind, None) in well_known, kind
    assert set(sc.COMPATIBLE_HOSTS.values()) <= well_known
    assert gen_ai.GenAiOperationNameValues.CHAT.value == sc.OPERATION_CHAT
    assert {"input", "output"} == {v.value for v in gen_ai.GenAiTokenTypeValues}


@pytest.mark.parametrize(
    ("url", "provider"),
    [
        ("https://api.groq.com/openai/v1", "groq"),
        ("https://api.deepseek.com", "deepseek"),
        ("http://localhost:11434/v1", "openai-compatible"),
        ("not a url", "openai-compatible"),
    ],
)
def test_an_openai_compatible_provider_is_named_by_its_host(url: str, provider: str) -> None:
    assert sc.provider_name("openai-compatible", sc.server_of(url)) == provider


@pytest.mark.parametrize(
    ("url", "server"),
    [
        ("https://api.openai.com/v1", ("api.openai.com", 443)),
        ("http://127.0.0.1:8080/v1", ("127.0.0.1", 8080)),
        ("http://example.com", ("example.com", 80)),
        ("https://[::1]:9000/x", ("::1", 9000)),
        ("https://u:p@host.example:1/p?key=v#f", ("host.example", 1)),
        ("HTTPS://API.OPENAI.COM", ("api.openai.com", 443)),
        ("https://host:99999", None),  # a malformed port is no server, not an exception
        ("ftp://host.example/x", None),  # no default port we know: no half-filled server
        ("", None),
    ],
)
def test_server_of_keeps_the_host_and_port_only(url: str, server: tuple[str, int] | None) -> None:
    assert sc.server_of(url) == server


@given(st.text())
def test_server_of_never_raises(url: str) -> None:
    server = sc.server_of(url)
    assert server is None or (server[0] and isinstance(server[1], int))


@pytest.mark.parametrize(
    ("error", "status", "expected"),
    [
        (RateLimitedError("slow down", status=429), None, "429"),
        (OverloadedError("busy", status=529), None, "529"),
        (ProviderError("odd", status=None), None, "guardedllm.errors.ProviderError"),
        (ConnectError("refused"), None, "guardedllm.errors.ConnectError"),
        (AllRoutesFailedError("all failed"), None, "guardedllm.errors.AllRoutesFailedError"),
        (ValueError("x"), 503, "503"),
        (ValueError("x"), 200, "ValueError"),
        (KeyboardInterrupt(), None, "KeyboardInterrupt"),
    ],
)
def test_error_type_is_the_status_or_the_qualified_class(
    error: BaseException, status: int | None, expected: str
) -> None:
    assert sc.error_type(error, status) == expected


def test_bucket_boundaries_are_the_advised_ones() -> None:
    # The conventions' lists are doublings from 10 ms and powers of 4: a typo in ours fails.
    assert pytest.approx(tuple(0.01 * 2**i for i in range(14))) == sc.DURATION_BUCKETS
    assert sc.DURATION_BUCKETS[-1] == 81.92
    assert tuple(4**i for i in range(14)) == sc.TOKEN_BUCKETS
    assert sc.SCHEMA_URL == "https://opentelemetry.io/schemas/1.41.0"
