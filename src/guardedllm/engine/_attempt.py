"""What one HTTP attempt is made of: the ``Send`` step for the driver, and the attempt's span.
Pure: the call, the request and the turn in, the values out."""

from __future__ import annotations

from guardedllm.engine._call import Call, Turn
from guardedllm.engine._steps import Send
from guardedllm.engine._stream import BoundedDecoder
from guardedllm.telemetry import AttemptSpan
from guardedllm.types import ChatRequest

__all__ = ["attempt_send", "start_attempt_span"]


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


def start_attempt_span(
    call: Call, attempt: Turn, number: int, *, reason: str | None, now: float
) -> AttemptSpan:
    """The span of attempt ``number`` on ``attempt``'s deployment, within the call's span."""
    target = attempt.target
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
