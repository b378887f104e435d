"""What one HTTP attempt is made of: the ``Send`` step for the driver, and the attempt's span.
Pure: the call, the request and the turn in, the values out."""

from __future__ import annotations

import logging

from guardedllm.engine._call import Call, Turn
from guardedllm.engine._steps import Send
from guardedllm.engine._stream import BoundedDecoder
from guardedllm.telemetry import AttemptSpan
from guardedllm.types import ChatRequest

__all__ = ["attempt_send", "start_attempt_span"]

# Each attempt, retry and fallback, for people reading logs: names and reasons, never content
# or keys.
logger = logging.getLogger("guardedllm")


def attempt_send(
    call: Call, request: ChatRequest, attempt: Turn, timeout: float, *, max_body_bytes: int
) -> Send:
    """The step for one attempt. ``timeout`` bounds each read; the driver also caps the whole
    attempt, up to a stream's first chunk, by it or by the first-chunk timeout, whichever is
    shorter."""
    target = attempt.target
    # What httpx.Timeout(timeout).as_dict() gives, without building the Timeout.
    attempt.http_request.extensions["timeout"] = {
        "connect": timeout,
        "read": timeout,
        "write": timeout,
        "pool": timeout,
    }
    cap = timeout
    if request.stream and call.settings.first_chunk_timeout_s is not None:
        cap = min(cap, call.settings.first_chunk_timeout_s)
    decoder: BoundedDecoder | None = None
    if request.stream:
        decoder = BoundedDecoder.for_stream(
            attempt.wire.stream_decoder(target),
            target,
            request=request,
            max_output_tokens=attempt.estimate.max_output_tokens,
            max_body_bytes=max_body_bytes,
        )
    return Send(
        request=attempt.http_request,
        target=target,
        decoder=decoder,
        timeout_s=cap,
        max_body_bytes=max_body_bytes,
    )


def readable(reason: str) -> str:
    """A reason as telemetry labels it (``error.type``: "503", "guardedllm.errors.X"), for a
    log line: "HTTP 503", "X"."""
    if reason.isdigit():
        return f"HTTP {reason}"
    return reason.rpartition(".")[2]


def start_attempt_span(
    call: Call, attempt: Turn, number: int, *, reason: str | None, now: float
) -> AttemptSpan:
    """The span of attempt ``number`` on ``attempt``'s deployment, within the call's span, and
    its log record: a fallback at INFO, the attempt or retry at DEBUG."""
    target = attempt.target
    requested = call.plan.requested
    if reason is None or reason == "escalation":  # an escalation is logged as it is decided
        logger.debug("call to %s: attempt %d on %s", requested, number, target.deployment)
    elif reason == "panic":
        logger.info(
            "call to %s: every deployment of the plan is open; sending to %s anyway (the panic "
            "share)",
            requested,
            target.deployment,
        )
    elif number > 1:
        logger.debug(
            "call to %s: retrying %s (attempt %d) after %s",
            requested,
            target.deployment,
            number,
            readable(reason),
        )
    else:
        logger.info(
            "call to %s: falling back from %s to %s after %s",
            requested,
            call.last_sent or "the plan's first choice",
            target.deployment,
            readable(reason),
        )
    call.last_sent = target.deployment
    return call.span.start_attempt(
        deployment=target.deployment,
        provider_kind=target.kind,
        provider_name=target.provider,
        vendor_model=target.model,
        server_url=target.base_url,
        number=number,
        reason=reason,
        now=now,
    )
