"""The sans-IO engine: every decision of a call, as steps that the two drivers carry out.

See ``_engine.py`` for the order in which the guards are consulted. ``Engine`` and ``Guards``
load on first use: they bring in the guards and OpenTelemetry, which ``import guardedllm``
should not pay for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from guardedllm.engine._classify import STATUS_VERDICTS, breaker_outcome, classify
from guardedllm.engine._steps import (
    Answered,
    BodyBuffer,
    Failed,
    Late,
    Outcome,
    Race,
    Raced,
    Send,
    Sleep,
    Stated,
    StateStep,
    Step,
    StreamStart,
    StreamStarted,
    stream_ended_early,
    succeeded,
    too_slow,
    transport_error,
    with_client_headers,
)
from guardedllm.engine._stream import StreamTracker

if TYPE_CHECKING:
    from guardedllm.engine._engine import Engine
    from guardedllm.engine._guards import Guards

__all__ = [
    "STATUS_VERDICTS",
    "Answered",
    "BodyBuffer",
    "Engine",
    "Failed",
    "Guards",
    "Late",
    "Outcome",
    "Race",
    "Raced",
    "Send",
    "Sleep",
    "StateStep",
    "Stated",
    "Step",
    "StreamStart",
    "StreamStarted",
    "StreamTracker",
    "breaker_outcome",
    "classify",
    "stream_ended_early",
    "succeeded",
    "too_slow",
    "transport_error",
    "with_client_headers",
]


def __getattr__(name: str) -> Any:
    if name == "Engine":
        from guardedllm.engine._engine import Engine

        return Engine
    if name == "Guards":
        from guardedllm.engine._guards import Guards

        return Guards
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
