"""Every name guardedllm's telemetry emits, and the small pure mappings behind them.

The ``gen_ai.*``, ``server.*``, ``error.type`` and ``http.*`` names follow the OpenTelemetry
semantic conventions as released in v1.41.0, the last release before the GenAI conventions moved
to their own repository: the inference span, the client metrics with their advised bucket
boundaries, the token, cache and reasoning usage attributes, ``gen_ai.request.stream`` and
``gen_ai.response.time_to_first_chunk``. They are spelled out here rather than imported from
``opentelemetry-semantic-conventions``, which is not a dependency of opentelemetry-api. What the
conventions do not cover (routes, deployments, attempts, cost, budgets) is named ``guardedllm.*``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Final
from urllib.parse import urlsplit

from guardedllm.errors import ProviderError

SEMCONV_VERSION: Final = "1.41.0"
SCHEMA_URL: Final = f"https://opentelemetry.io/schemas/{SEMCONV_VERSION}"
INSTRUMENTATION_NAME: Final = "guardedllm"

OPERATION_CHAT: Final = "chat"
OPERATION_EMBEDDINGS: Final = "embeddings"

# --------------------------------------------------------------------------- span attributes

GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_REQUEST_MAX_TOKENS: Final = "gen_ai.request.max_tokens"
GEN_AI_REQUEST_TEMPERATURE: Final = "gen_ai.request.temperature"
GEN_AI_REQUEST_TOP_P: Final = "gen_ai.request.top_p"
GEN_AI_REQUEST_STOP_SEQUENCES: Final = "gen_ai.request.stop_sequences"
GEN_AI_REQUEST_SEED: Final = "gen_ai.request.seed"
GEN_AI_REQUEST_STREAM: Final = "gen_ai.request.stream"
GEN_AI_REQUEST_CHOICE_COUNT: Final = "gen_ai.request.choice.count"
GEN_AI_REQUEST_FREQUENCY_PENALTY: Final = "gen_ai.request.frequency_penalty"
GEN_AI_REQUEST_PRESENCE_PENALTY: Final = "gen_ai.request.presence_penalty"
GEN_AI_OUTPUT_TYPE: Final = "gen_ai.output.type"
GEN_AI_RESPONSE_ID: Final = "gen_ai.response.id"
GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
GEN_AI_RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: Final = "gen_ai.response.time_to_first_chunk"
GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: Final = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: Final = "gen_ai.usage.reasoning.output_tokens"
GEN_AI_TOKEN_TYPE: Final = "gen_ai.token.type"  # noqa: S105 - a name, not a secret
GEN_AI_INPUT_MESSAGES: Final = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"
ERROR_TYPE: Final = "error.type"
HTTP_RESPONSE_STATUS_CODE: Final = "http.response.status_code"
EXCEPTION_TYPE: Final = "exception.type"
EXCEPTION_MESSAGE: Final = "exception.message"

# Where content goes when recording it is switched on: the conventions' opt-in event.
EVENT_OPERATION_DETAILS: Final = "gen_ai.client.inference.operation.details"
EVENT_EXCEPTION: Final = "exception"

GUARDEDLLM_DEPLOYMENT: Final = "guardedllm.deployment"
GUARDEDLLM_PROVIDER: Final = "guardedllm.provider"  # the provider's name in the config
GUARDEDLLM_ROUTE: Final = "guardedllm.route"
GUARDEDLLM_ROUTE_REASON: Final = "guardedllm.route.reason"
GUARDEDLLM_ATTEMPT_NUMBER: Final = "guardedllm.attempt.number"
GUARDEDLLM_ATTEMPT_COUNT: Final = "guardedllm.attempt.count"
GUARDEDLLM_ATTEMPT_OUTCOME: Final = "guardedllm.attempt.outcome"
GUARDEDLLM_RETRY_REASON: Final = "guardedllm.retry.reason"
GUARDEDLLM_FALLBACK_REASON: Final = "guardedllm.fallback.reason"
GUARDEDLLM_FALLBACK_FROM: Final = "guardedllm.fallback.from"
GUARDEDLLM_COST_USD: Final = "guardedllm.cost_usd"
GUARDEDLLM_ESTIMATE_INPUT_TOKENS: Final = "guardedllm.estimate.input_tokens"
GUARDEDLLM_ESTIMATE_MAX_OUTPUT_TOKENS: Final = "guardedllm.estimate.max_output_tokens"
GUARDEDLLM_ESTIMATE_COST_USD_MAX: Final = "guardedllm.estimate.cost_usd_max"
GUARDEDLLM_ESTIMATE_EXACT: Final = "guardedllm.estimate.exact"
GUARDEDLLM_STREAM_OUTCOME: Final = "guardedllm.stream.outcome"
GUARDEDLLM_STREAM_CHUNKS: Final = "guardedllm.stream.chunks"
GUARDEDLLM_BREAKER_STATE: Final = "guardedllm.breaker.state"
GUARDEDLLM_BUDGET: Final = "guardedllm.budget"
GUARDEDLLM_BREAKER_FROM: Final = "guardedllm.breaker.from"
GUARDEDLLM_BREAKER_TO: Final = "guardedllm.breaker.to"
GUARDEDLLM_BREAKER_REASON: Final = "guardedllm.breaker.reason"
GUARDEDLLM_HEDGE_FOR: Final = "guardedllm.hedge.for"
GUARDEDLLM_HEDGE_DELAY_S: Final = "guardedllm.hedge.delay_s"
GUARDEDLLM_SHADOW_OF: Final = "guardedllm.shadow.of"  # on a shadow copy's call span: the route
GUARDEDLLM_SHADOW_SENT: Final = "guardedllm.shadow.sent"
GUARDEDLLM_DECISION_REASON: Final = "guardedllm.decision.reason"
GUARDEDLLM_STATE_STORE: Final = "guardedllm.state.store"  # address and key prefix, no password
GUARDEDLLM_STATE_ON_ERROR: Final = "guardedllm.state.on_error"
GUARDEDLLM_RECORD_REASON: Final = "guardedllm.record.reason"  # queue_full, write_error, closed

# Span events on the call span. Retries and fallbacks are added by ``CallSpan.start_attempt``;
# the others by whoever observes them, through ``CallSpan.event``.
EVENT_RETRY: Final = "guardedllm.retry"
EVENT_FALLBACK: Final = "guardedllm.fallback"
EVENT_BREAKER_TRANSITION: Final = "guardedllm.breaker.transition"
EVENT_SKIPPED: Final = "guardedllm.deployment.skipped"
EVENT_HEDGE: Final = "guardedllm.hedge"
EVENT_SHADOW: Final = "guardedllm.shadow"
EVENT_ESCALATION: Final = "guardedllm.escalation"
# The call's guards used this process's own state for some of it: the shared store failed.
EVENT_LOCAL_STATE: Final = "guardedllm.state.local"

# --------------------------------------------------------------------------- metrics

METRIC_OPERATION_DURATION: Final = "gen_ai.client.operation.duration"
METRIC_TOKEN_USAGE: Final = "gen_ai.client.token.usage"  # noqa: S105 - a name, not a secret
METRIC_TIME_TO_FIRST_CHUNK: Final = "gen_ai.client.operation.time_to_first_chunk"
METRIC_TIME_PER_OUTPUT_CHUNK: Final = "gen_ai.client.operation.time_per_output_chunk"
METRIC_ATTEMPT_DURATION: Final = "guardedllm.attempt.duration"
METRIC_ATTEMPTS: Final = "guardedllm.attempts"
METRIC_RETRIES: Final = "guardedllm.retries"
METRIC_FALLBACKS: Final = "guardedllm.fallbacks"
METRIC_COST: Final = "guardedllm.cost"
METRIC_BREAKER_STATE: Final = "guardedllm.breaker.state"
METRIC_RETRY_BUDGET: Final = "guardedllm.retry_budget.available"
METRIC_SPEND_BUDGET: Final = "guardedllm.spend_budget.remaining"
METRIC_RETRY_AFTER_CAPPED: Final = "guardedllm.retry_after.capped"
METRIC_STATE_ERRORS: Final = "guardedllm.state.errors"
METRIC_RECORD_DROPPED: Final = "guardedllm.record.dropped"
METRIC_COST_OVERSHOOT: Final = "guardedllm.cost.overshoot"

# Currency is not a UCUM unit; the OpenTelemetry unit rules put such units in curly braces.
UNIT_USD: Final = "{USD}"

# The conventions' advised ExplicitBucketBoundaries. Durations double from 10 ms to ~82 s (the
# time-to-first-chunk histogram uses the same); token counts grow by 4x from 1 to 64M.
DURATION_BUCKETS: Final = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
TOKEN_BUCKETS: Final = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)  # fmt: skip

# --------------------------------------------------------------------------- mappings

# Our provider kinds as the conventions' well-known gen_ai.provider.name values.
PROVIDER_NAMES: Final[Mapping[str, str]] = {
    "openai": "openai",
    "azure-openai": "azure.ai.openai",
    "anthropic": "anthropic",
    "gemini": "gcp.gemini",  # generativelanguage.googleapis.com, the AI Studio API
}

# An openai-compatible provider is named after the vendor its host belongs to when the
# conventions know that vendor; any other server (vLLM, Ollama, a gateway) keeps the custom
# value "openai-compatible" rather than claiming to be OpenAI.
COMPATIBLE_HOSTS: Final[Mapping[str, str]] = {
    "api.openai.com": "openai",
    "api.groq.com": "groq",
    "api.deepseek.com": "deepseek",
    "api.mistral.ai": "mistral_ai",
    "api.x.ai": "x_ai",
    "api.perplexity.ai": "perplexity",
    "api.cohere.com": "cohere",
    "api.cohere.ai": "cohere",
}
COMPATIBLE_PROVIDER: Final = "openai-compatible"

_DEFAULT_PORTS: Final[Mapping[str, int]] = {"https": 443, "http": 80}


@functools.lru_cache(maxsize=256)
def server_of(url: str) -> tuple[str, int] | None:
    """``(server.address, server.port)`` of a base URL, or None when it has no host.

    Only the host and port are kept: never the path, query or user info, where a key could
    hide. The port is the scheme's default when the URL names none, as the conventions require
    ``server.port`` whenever ``server.address`` is set. Cached: a config has few base URLs.
    """
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:  # a malformed port; the registry validates URLs, telemetry never fails
        return None
    if not host:
        return None
    if port is None:
        port = _DEFAULT_PORTS.get(parts.scheme.lower())
    return (host, port) if port is not None else None


def provider_name(kind: str, server: tuple[str, int] | None) -> str:
    """The ``gen_ai.provider.name`` for a provider of ``kind`` at ``server``."""
    name = PROVIDER_NAMES.get(kind)
    if name is not None:
        return name
    if server is not None:
        return COMPATIBLE_HOSTS.get(server[0], COMPATIBLE_PROVIDER)
    return COMPATIBLE_PROVIDER


def error_type(error: BaseException, status: int | None = None) -> str:
    """A low-cardinality ``error.type``: the HTTP status when the vendor answered with an error
    status (as the HTTP conventions do), else the exception's fully qualified class name."""
    if status is None and isinstance(error, ProviderError):
        status = error.status
    if status is not None and status >= 400:
        return str(status)
    return qualified_name(type(error))


def qualified_name(cls: type) -> str:
    """``module.QualName`` of a class; builtins by their bare name."""
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


# Every guardedllm.* attribute, event and metric name above: the names dashboards and alerts
# may rely on, kept as stable as the public API.
GUARDEDLLM_NAMES: Final = frozenset(
    value
    for name, value in list(globals().items())
    if name.isupper() and isinstance(value, str) and value.startswith("guardedllm.")
)
