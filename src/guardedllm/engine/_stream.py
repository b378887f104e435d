"""What a stream may carry, and what happens to it after its first chunk has reached the caller.

Every stream's decoder is a ``BoundedDecoder``: a stream that goes on well past the output it
may produce, in chunks or in bytes, is a protocol violation, refused with ``ResponseFormatError``
(which, like any garbage, fails the attempt before the first chunk and interrupts the stream
after it). So nothing a stream holds (the SSE parser's event, the chunks the tracker keeps)
grows without bound, however long the vendor keeps sending.

After the first chunk the engine has committed: nothing is retried from there. The tracker
decodes the rest, keeps what the caller received (for ``StreamInterruptedError``), and settles
the call exactly once, whichever way it ends: completed (the vendor's terminal event arrived),
interrupted (the connection broke, or the vendor sent garbage or an error event), or abandoned
(the caller stopped reading).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import attrs

from guardedllm import defaults
from guardedllm.errors import (
    GuardedLLMError,
    ResponseFormatError,
    StreamInterruptedError,
    redact,
)
from guardedllm.providers.base import StreamDecoder, Target
from guardedllm.types import ChatCompletionChunk, ChatRequest, GuardInfo, Usage

__all__ = ["BoundedDecoder", "StreamEnd", "StreamTracker"]

StreamEnd = Literal["completed", "interrupted", "abandoned"]

# Called once when the stream ends: how it ended, the usage the vendor reported (if it did),
# the chunks received, the error for an interrupted one, and the call's guard info so far.
# Returns the stream's cost, if known, and the guard operations left for the driver to run
# (None: done already; see ``StreamTracker.take_pending``).
Settle = Callable[
    [StreamEnd, Usage | None, Sequence[ChatCompletionChunk], BaseException | None, GuardInfo],
    tuple[float | None, Callable[[], None] | None],
]


class BoundedDecoder:
    """A stream's decoder, held to ``max_chunks`` chunks and ``max_bytes`` bytes of body.

    The engine wraps each stream's decoder in one, so the driver reading up to the first chunk
    and the tracker reading the rest count against the same bounds. Bytes are counted before
    they are decoded: past ``max_bytes``, nothing more is held."""

    __slots__ = ("_bytes", "_chunks", "_decoder", "_max_bytes", "_max_chunks", "_target")

    def __init__(
        self, decoder: StreamDecoder, target: Target, *, max_chunks: int, max_bytes: int
    ) -> None:
        self._decoder = decoder
        self._target = target
        self._max_chunks = max_chunks
        self._max_bytes = max_bytes
        self._chunks = 0
        self._bytes = 0

    @classmethod
    def for_stream(
        cls,
        decoder: StreamDecoder,
        target: Target,
        *,
        request: ChatRequest,
        max_output_tokens: int,
        max_body_bytes: int,
    ) -> BoundedDecoder:
        """``decoder`` held to what a stream of ``request`` may carry: per choice, as many
        chunks as ``defaults.STREAM_CHUNKS_PER_TOKEN`` a token of its output ceiling (the
        caller's ``max_tokens``, else the deployment's ``max_output_tokens``) plus slack, and
        as many bytes as a whole answer may have or ``defaults.STREAM_BYTES_PER_TOKEN`` a
        token, whichever is more."""
        tokens = max(request.max_tokens or 0, max_output_tokens)
        n = request.extra.get("n")
        choices = n if type(n) is int and n > 1 else 1  # OpenAI's n: that many answers at once
        return cls(
            decoder,
            target,
            max_chunks=(defaults.STREAM_CHUNKS_PER_TOKEN * tokens + defaults.STREAM_CHUNK_SLACK)
            * choices,
            max_bytes=max(max_body_bytes, defaults.STREAM_BYTES_PER_TOKEN * tokens * choices),
        )

    @property
    def done(self) -> bool:
        return self._decoder.done

    @property
    def usage(self) -> Usage | None:
        return self._decoder.usage

    def feed(self, data: bytes) -> list[ChatCompletionChunk]:
        self._bytes += len(data)
        if self._bytes > self._max_bytes:
            raise self._refusal(f"{self._max_bytes} bytes")
        chunks = self._decoder.feed(data)
        if chunks:
            self._chunks += len(chunks)
            if self._chunks > self._max_chunks:
                raise self._refusal(f"{self._max_chunks} chunks")
        return chunks

    def close(self) -> list[ChatCompletionChunk]:
        chunks = self._decoder.close()
        self._chunks += len(chunks)
        if self._chunks > self._max_chunks:
            raise self._refusal(f"{self._max_chunks} chunks")
        return chunks

    def _refusal(self, bound: str) -> ResponseFormatError:
        target = self._target
        return ResponseFormatError(
            f"{target.deployment}: the stream from {target.provider} went on past {bound}, far "
            "more than the output the request allows; a stream that does not stop is not an "
            "answer, so it was cut. Check the provider's base_url and that it honours "
            "max_tokens.",
            deployment=target.deployment,
        )


class StreamTracker:
    """The pure bookkeeping of one committed stream. The drivers feed it bytes."""

    def __init__(
        self,
        *,
        guard: GuardInfo,
        target: Target,
        decoder: StreamDecoder,
        include_usage: bool,
        clock: Callable[[], float],
        settle: Settle,
        on_chunk: Callable[[float], None] | None = None,
    ) -> None:
        self.guard = guard
        self.target = target
        self._decoder = decoder
        self._include_usage = include_usage
        self._clock = clock
        self._settle = settle
        self._on_chunk = on_chunk
        self._started = clock()
        self._received: list[ChatCompletionChunk] = []
        self.ended: StreamEnd | None = None
        self._pending: Callable[[], None] | None = None

    @property
    def completed(self) -> bool:
        return self.ended == "completed"

    def first(self, chunks: Sequence[ChatCompletionChunk]) -> list[ChatCompletionChunk]:
        """The chunks read while the stream was being opened (the first is timed as the
        first chunk by the engine; any more that came in the same read count as next ones)."""
        if len(chunks) > 1 and self._on_chunk is not None:
            now = self._clock()
            for _ in chunks[1:]:
                self._on_chunk(now)
        self._received.extend(chunks)
        return self._visible(chunks)

    def feed(self, data: bytes) -> list[ChatCompletionChunk]:
        """Decode more bytes; a vendor error event or garbage interrupts the stream."""
        try:
            chunks = self._decoder.feed(data)
        except GuardedLLMError as exc:
            raise self.interrupted(exc) from exc
        if not chunks:
            return chunks
        if self._on_chunk is not None:
            now = self._clock()
            for _ in chunks:
                self._on_chunk(now)
        self._received.extend(chunks)
        return self._visible(chunks)

    def finish(self) -> list[ChatCompletionChunk]:
        """The body ended: complete only if the vendor's terminal event arrived."""
        try:
            chunks = self._decoder.close()
        except GuardedLLMError as exc:
            raise self.interrupted(exc) from exc
        self._received.extend(chunks)
        self._end("completed", self._decoder.usage, None)
        return self._visible(chunks)

    def interrupted(self, cause: GuardedLLMError) -> StreamInterruptedError:
        """The error for a stream that broke after chunks reached the caller (settles it).
        Every failure of a committed stream passes here: ``cause`` (a vendor error event,
        garbage, a dropped connection) has the attempt's key masked wherever the vendor quoted
        it, as ``settle`` does for an attempt's outcome, before anything records it."""
        redact(cause, self.target.api_key)
        error = StreamInterruptedError(
            f"{self.target.deployment}: the stream broke after {len(self._received)} chunks: "
            f"{type(cause).__name__}. It was not retried, since part of the answer had reached "
            "you; `.received` and `.partial_content` hold what arrived. Retry the call if you "
            "need the whole answer.",
            received=self._received,
            deployment=self.target.deployment,
        )
        error.attempts = self.guard.attempts
        self._end("interrupted", self._decoder.usage, error)
        return error

    def abandon(self) -> None:
        """The caller stopped reading (or the stream object was closed) before the end."""
        self._end("abandoned", self._decoder.usage, None)

    def _end(self, how: StreamEnd, usage: Usage | None, error: BaseException | None) -> None:
        if self.ended is not None:
            return
        self.ended = how
        cost, self._pending = self._settle(how, usage, self._received, error, self.guard)
        self.guard = attrs.evolve(
            self.guard,
            cost_usd=cost,
            latency_s=self.guard.latency_s + (self._clock() - self._started),
        )

    def take_pending(self) -> Callable[[], None] | None:
        """The guard operations the stream's end left to run, once (None: nothing left). On a
        shared store, settling a stream is I/O that the reader must not do on an event loop:
        the sync driver runs it as the stream ends, the async one in a worker thread."""
        pending, self._pending = self._pending, None
        return pending

    def _visible(self, chunks: Sequence[ChatCompletionChunk]) -> list[ChatCompletionChunk]:
        # The usage-only last chunk reaches the caller only if asked for, as with the openai
        # package: code written for it may index choices[0] on every chunk.
        if self._include_usage or (len(chunks) == 1 and chunks[0].choices):
            # Nothing to hide (one chunk of text is the commonest read): the decoder's own list.
            return chunks if isinstance(chunks, list) else list(chunks)
        return [c for c in chunks if c.choices or c.usage is None]
