"""The protocol between the engine and its drivers: the steps the engine yields, the outcomes
the drivers send back, and the small pure helpers both sides share."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs
import httpx

from guardedllm.errors import (
    ConnectError,
    ConnectionDroppedError,
    GuardedLLMError,
    ResponseFormatError,
    TimeoutError,
    TransportError,
    scrub_secrets,
)
from guardedllm.providers.base import StreamDecoder, Target
from guardedllm.types import ChatCompletionChunk

if TYPE_CHECKING:
    from guardedllm.engine._stream import StreamTracker

__all__ = [
    "Answered",
    "BodyBuffer",
    "Failed",
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
    "stream_ended_early",
    "succeeded",
    "too_slow",
    "transport_error",
    "with_client_headers",
]


@attrs.frozen(kw_only=True)
class Send:
    """Send ``request``. For a stream (``decoder`` set), read until it yields a first chunk.
    ``timeout_s`` caps the whole attempt up to its answer (a stream's first chunk): what is
    left of the call's deadline at most, or a stream's first-chunk timeout."""

    request: httpx.Request
    target: Target
    decoder: StreamDecoder | None
    timeout_s: float
    max_body_bytes: int


@attrs.frozen(kw_only=True)
class Sleep:
    seconds: float


@attrs.frozen(kw_only=True)
class Race:
    """Send ``first``; if it has not answered within ``delay_s``, send ``second`` too (a hedge).
    The first success wins and the other is cancelled; a failure waits for the other."""

    first: Send
    second: Send
    delay_s: float


@attrs.frozen(kw_only=True)
class StateStep:
    """Run ``run``, one phase of guard operations against a shared state store (a round trip
    or a few), and send back its result as ``Stated``; an exception it raises is thrown back
    into the flow, where the engine decides what it means. The engine built the thunk; the
    driver only chooses the thread: the sync driver calls it, the async driver runs it in a
    worker thread so that no event loop waits on the store. Guards on an in-process backend
    never yield this step: the engine calls the thunk at once.

    ``timeout_s`` (None: no bound but the store's own timeouts) is how long the driver may
    wait for the result: what is left of the call's deadline. Then the thunk runs in a worker
    thread and, when the time is up first, the driver sends back ``Late`` instead and leaves
    the thunk to finish in its thread."""

    run: Callable[[], object]
    timeout_s: float | None = None


Step = Send | Sleep | Race | StateStep


@attrs.frozen(kw_only=True)
class Answered:
    """A complete HTTP answer: any non-streaming response, or an error status on a stream."""

    status: int
    headers: httpx.Headers
    body: bytes


@attrs.frozen(kw_only=True)
class StreamStarted:
    """A 2xx stream produced its first chunks; ``handle`` is the driver's open response."""

    first_chunks: tuple[ChatCompletionChunk, ...]
    handle: object
    decoder: StreamDecoder
    headers: httpx.Headers = attrs.field(factory=httpx.Headers)


@attrs.frozen(kw_only=True)
class Failed:
    """No usable answer: a transport failure, an unparseable body, or a vendor error event
    before the first chunk."""

    error: GuardedLLMError


@attrs.frozen(kw_only=True)
class Raced:
    """How a ``Race`` went: each side's outcome (None if it was never sent, or was cancelled
    when the other won), its latency, and which side won (None when neither succeeded)."""

    outcomes: tuple[
        Answered | StreamStarted | Failed | None, Answered | StreamStarted | Failed | None
    ]
    latencies: tuple[float, float]
    winner: int | None
    launched: bool  # whether the second attempt was sent at all


@attrs.frozen(kw_only=True)
class Stated:
    """What a ``StateStep``'s thunk returned."""

    value: object


@attrs.frozen(kw_only=True)
class Late:
    """A ``StateStep`` the driver stopped waiting for at its ``timeout_s``: it is still running
    in a worker thread. ``then(run)`` runs ``run`` once it has finished (off the event loop),
    so what it took can be let go of then, never while it runs."""

    then: Callable[[Callable[[], object]], None]


Outcome = Answered | StreamStarted | Failed | Raced | Stated | Late


def succeeded(outcome: object) -> bool:
    """Whether an attempt's outcome is an answer worth keeping (a 2xx, or a started stream)."""
    return isinstance(outcome, StreamStarted) or (
        isinstance(outcome, Answered) and outcome.status < 300
    )


@attrs.frozen(kw_only=True)
class StreamStart:
    """What a streamed call returns: the driver keeps reading ``handle`` through ``tracker``."""

    handle: object
    first_chunks: tuple[ChatCompletionChunk, ...]
    tracker: StreamTracker


# httpx's transport exceptions, by the class of ours they become (most specific first).
_TRANSPORT_ERRORS: tuple[tuple[type[Exception], type[TransportError], str], ...] = (
    (httpx.ConnectTimeout, TimeoutError, "timed out connecting"),
    (httpx.TimeoutException, TimeoutError, "timed out"),
    (httpx.ConnectError, ConnectError, "could not connect"),
    (httpx.RemoteProtocolError, ConnectionDroppedError, "dropped the connection"),
    (httpx.ReadError, ConnectionDroppedError, "dropped the connection"),
    (httpx.WriteError, ConnectionDroppedError, "dropped the connection"),
    (httpx.DecodingError, ConnectionDroppedError, "sent a body that does not decode"),
)


def transport_error(exc: Exception, target: Target) -> TransportError:
    """Our error for an httpx transport failure on ``target``."""
    cls, what = TransportError, "failed"
    for source, mapped, text in _TRANSPORT_ERRORS:
        if isinstance(exc, source):
            cls, what = mapped, text
            break
    detail = scrub_secrets(str(exc) or type(exc).__name__)
    if target.api_key:  # an HTTP library may quote a header back, key and all
        detail = detail.replace(target.api_key, "[redacted]")
    return cls(
        f"{target.deployment}: {target.provider} {what} ({detail}). Check the provider's "
        "base_url and the network if it persists.",
        deployment=target.deployment,
    )


class BodyBuffer:
    """Collects a response body, refusing one larger than the limit."""

    def __init__(self, limit: int, target: Target) -> None:
        self._limit = limit
        self._target = target
        self._parts: list[bytes] = []
        self._size = 0

    def add(self, data: bytes) -> None:
        self._size += len(data)
        if self._size > self._limit:
            raise ResponseFormatError(
                f"{self._target.deployment}: the response from {self._target.provider} is "
                f"larger than {self._limit} bytes, far beyond any chat completion; refused. "
                "Check that base_url points at the vendor's API.",
                deployment=self._target.deployment,
            )
        self._parts.append(data)

    def value(self) -> bytes:
        return b"".join(self._parts)


def with_client_headers(request: httpx.Request, headers: httpx.Headers) -> httpx.Request:
    """``request`` with the sending client's default headers (a user's ``http_client`` may
    carry its own, such as a tracing or team header) wherever the wire format set none."""
    for name, value in headers.multi_items():
        if name not in request.headers:
            request.headers[name] = value
    return request


def too_slow(step: Send) -> TransportError:
    """The error for an attempt that ran past its cap (``Send.timeout_s``)."""
    what = "first chunk" if step.decoder is not None else "answer"
    return transport_error(
        httpx.TimeoutException(f"no {what} within {step.timeout_s:.2f} s"), step.target
    )


def stream_ended_early(target: Target) -> ResponseFormatError:
    """The error for a stream whose body ended before its first chunk."""
    return ResponseFormatError(
        f"{target.deployment}: the stream from {target.provider} ended before its first chunk.",
        deployment=target.deployment,
    )
