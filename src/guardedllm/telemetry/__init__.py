"""OpenTelemetry spans and metrics for every call and attempt, through opentelemetry-api only.

Importing this package never imports the OpenTelemetry SDK: the application chooses and installs
one (or none, and every recorder call costs next to nothing). Names follow the GenAI semantic
conventions v1.41.0 (see ``_semconv.py``); what they do not cover is named ``guardedllm.*``.

What one call emits:

    chat {requested}           CLIENT span per logical call (alias, route or model asked for)
    ├── chat {vendor model}    CLIENT span per HTTP attempt, with its deployment and number
    ├── chat {vendor model}    a retry (guardedllm.retry.reason) or a fallback
    └── events                 guardedllm.retry, guardedllm.fallback, breaker transitions, ...

    gen_ai.client.operation.duration, gen_ai.client.token.usage,
    gen_ai.client.operation.time_to_first_chunk (streams)          per call
    guardedllm.attempt.duration, guardedllm.attempts               per attempt
    guardedllm.retries, guardedllm.fallbacks, guardedllm.cost,
    guardedllm.retry_after.capped                                  as they happen
    guardedllm.breaker.state, guardedllm.retry_budget.available,
    guardedllm.spend_budget.remaining                              gauges, from callbacks

How the engine drives it: ``Telemetry.start_call`` when a call begins; ``CallSpan.start_attempt``
before each send; ``AttemptSpan.end_ok`` / ``end_error`` after it (streams: ``first_chunk``, then
``end_stream`` / ``end_error`` / ``abandon``); ``CallSpan.end_ok`` / ``end_error`` / ``abandon``
when the call is over. Messages and answers are recorded only with ``record_content=True``;
API keys never are.
"""

from guardedllm.telemetry._attempt import AttemptSpan
from guardedllm.telemetry._call import CallSpan
from guardedllm.telemetry._instruments import BREAKER_STATES
from guardedllm.telemetry._semconv import (
    EVENT_BREAKER_TRANSITION,
    EVENT_ESCALATION,
    EVENT_FALLBACK,
    EVENT_HEDGE,
    EVENT_LOCAL_STATE,
    EVENT_RETRY,
    EVENT_SHADOW,
    EVENT_SKIPPED,
    GUARDEDLLM_NAMES,
    SEMCONV_VERSION,
    error_type,
)
from guardedllm.telemetry._telemetry import Telemetry

__all__ = [
    "BREAKER_STATES",
    "EVENT_BREAKER_TRANSITION",
    "EVENT_ESCALATION",
    "EVENT_FALLBACK",
    "EVENT_HEDGE",
    "EVENT_LOCAL_STATE",
    "EVENT_RETRY",
    "EVENT_SHADOW",
    "EVENT_SKIPPED",
    "GUARDEDLLM_NAMES",
    "SEMCONV_VERSION",
    "AttemptSpan",
    "CallSpan",
    "Telemetry",
    "error_type",
]
