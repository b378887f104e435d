"""One client across many calls, run by any driver, for telemetry scenarios through the real
clients (``test_client_spans.py``).

``make_call`` (tests/support.py) makes a new client per call; a breaker opening, or several calls
made concurrently under the caller's own spans, need one client for the whole scenario. A
``Session`` holds one ``Client``, or one ``AsyncClient`` living in an asyncio or trio event loop
run by an anyio blocking portal, and every method blocks until the calls are done, so a test
reads the same whichever driver ran it. Concurrency is real in each: threads for ``Client``,
tasks in a task group for ``AsyncClient``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import Any, Protocol

import anyio
import anyio.lowlevel
import attrs
from anyio.from_thread import BlockingPortal, start_blocking_portal
from opentelemetry import trace
from opentelemetry.trace import SpanContext, Tracer

from guardedllm import AsyncClient, Client, Registry
from guardedllm.aclient import AsyncStream
from guardedllm.client import Stream
from guardedllm.types import ChatCompletion, ChatCompletionChunk, GuardInfo
from support import Streamed

# How long the threads of a concurrent scenario wait for each other before giving up.
_BARRIER_S = 10.0


class VirtualClock:
    """The clients' monotonic clock, moved by hand; sleeping advances it instead of waiting."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.advance(seconds)
        await anyio.lowlevel.checkpoint()


@attrs.frozen(kw_only=True)
class Seen:
    """A call made inside the caller's own span: that span, and the span current right after
    ``create`` returned, still inside it (guardedllm must not have changed it)."""

    user: SpanContext
    current_after: SpanContext


class OpenStream(Protocol):
    """A stream read one chunk at a time: ``next_chunk`` gives None at its end."""

    @property
    def guard(self) -> GuardInfo: ...

    def next_chunk(self) -> ChatCompletionChunk | None: ...

    def close(self) -> None: ...


class Session(Protocol):
    def create(self, **kwargs: Any) -> ChatCompletion:
        """One call; raises what the client raises."""
        ...

    def stream(self, *, read: int | None = None, **kwargs: Any) -> Streamed:
        """A streamed call, read to its end, or (``read=N``) broken out of after N chunks and
        closed. A stream that breaks raises ``StreamInterruptedError`` from here."""
        ...

    def open_stream(self, **kwargs: Any) -> OpenStream: ...

    def in_user_spans(
        self, names: Sequence[str], *, stream: bool = False, **kwargs: Any
    ) -> dict[str, Seen]:
        """One call per name, all at once, each inside the caller's own span of that name
        (a thread's or a task's). A stream is opened inside the span and read after it ends."""
        ...

    def close(self) -> None: ...


# --------------------------------------------------------------------------- Client


class _SyncStream:
    def __init__(self, stream: Stream) -> None:
        self._stream = stream

    @property
    def guard(self) -> GuardInfo:
        return self._stream.guard

    def next_chunk(self) -> ChatCompletionChunk | None:
        return next(self._stream, None)

    def close(self) -> None:
        self._stream.close()


class SyncSession:
    def __init__(self, registry: Registry, tracer: Tracer, **client_kwargs: Any) -> None:
        self._client = Client(registry, **client_kwargs)
        self._tracer = tracer

    def create(self, **kwargs: Any) -> ChatCompletion:
        result = self._client.chat.completions.create(**kwargs)
        assert isinstance(result, ChatCompletion)
        return result

    def stream(self, *, read: int | None = None, **kwargs: Any) -> Streamed:
        chunks: list[ChatCompletionChunk] = []
        with self._client.chat.completions.create(stream=True, **kwargs) as stream:
            for chunk in stream:
                chunks.append(chunk)
                if len(chunks) == read:
                    break
        return Streamed(chunks, stream.guard, stream.completed)

    def open_stream(self, **kwargs: Any) -> OpenStream:
        return _SyncStream(self._client.chat.completions.create(stream=True, **kwargs))

    def in_user_spans(
        self, names: Sequence[str], *, stream: bool = False, **kwargs: Any
    ) -> dict[str, Seen]:
        together = threading.Barrier(len(names), timeout=_BARRIER_S)

        def one(name: str) -> Seen:
            together.wait()  # every thread's call is in flight at once
            with self._tracer.start_as_current_span(name) as span:
                result = self._client.chat.completions.create(stream=stream, **kwargs)
                current = trace.get_current_span().get_span_context()
            if stream:
                with result:
                    for _ in result:
                        pass
            return Seen(user=span.get_span_context(), current_after=current)

        with ThreadPoolExecutor(len(names)) as pool:
            return dict(zip(names, pool.map(one, names), strict=True))

    def close(self) -> None:
        self._client.close()


# --------------------------------------------------------------------------- AsyncClient


class _AsyncStream:
    def __init__(self, portal: BlockingPortal, stream: AsyncStream) -> None:
        self._portal = portal
        self._stream = stream

    @property
    def guard(self) -> GuardInfo:
        return self._stream.guard

    def next_chunk(self) -> ChatCompletionChunk | None:
        async def next_or_none() -> ChatCompletionChunk | None:
            try:
                return await self._stream.__anext__()
            except StopAsyncIteration:
                return None

        return self._portal.call(next_or_none)

    def close(self) -> None:
        self._portal.call(self._stream.aclose)


class AsyncSession:
    """An ``AsyncClient`` in an event loop of ``backend`` ("asyncio" or "trio"), which a
    portal runs in its own thread for the whole session."""

    def __init__(
        self, backend: str, registry: Registry, tracer: Tracer, **client_kwargs: Any
    ) -> None:
        self._tracer = tracer
        with ExitStack() as stack:
            self._portal = stack.enter_context(start_blocking_portal(backend=backend))
            # Made inside the loop: the default transport belongs to the loop it is made in.
            self._client: AsyncClient = self._portal.call(
                lambda: AsyncClient(registry, **client_kwargs)
            )
            self._stack = stack.pop_all()  # kept open until close()

    def create(self, **kwargs: Any) -> ChatCompletion:
        async def create() -> ChatCompletion:
            result = await self._client.chat.completions.create(**kwargs)
            assert isinstance(result, ChatCompletion)
            return result

        return self._portal.call(create)

    def stream(self, *, read: int | None = None, **kwargs: Any) -> Streamed:
        async def stream() -> Streamed:
            chunks: list[ChatCompletionChunk] = []
            result = await self._client.chat.completions.create(stream=True, **kwargs)
            async with result:
                async for chunk in result:
                    chunks.append(chunk)
                    if len(chunks) == read:
                        break
            return Streamed(chunks, result.guard, result.completed)

        return self._portal.call(stream)

    def open_stream(self, **kwargs: Any) -> OpenStream:
        async def open_() -> AsyncStream:
            result = await self._client.chat.completions.create(stream=True, **kwargs)
            assert isinstance(result, AsyncStream)
            return result

        return _AsyncStream(self._portal, self._portal.call(open_))

    def in_user_spans(
        self, names: Sequence[str], *, stream: bool = False, **kwargs: Any
    ) -> dict[str, Seen]:
        async def all_at_once() -> dict[str, Seen]:
            seen: dict[str, Seen] = {}

            async def one(name: str) -> None:
                with self._tracer.start_as_current_span(name) as span:
                    result = await self._client.chat.completions.create(stream=stream, **kwargs)
                    current = trace.get_current_span().get_span_context()
                if stream:
                    async with result:
                        async for _ in result:
                            pass
                seen[name] = Seen(user=span.get_span_context(), current_after=current)

            async with anyio.create_task_group() as group:
                for name in names:
                    group.start_soon(one, name)
            return seen

        return self._portal.call(all_at_once)

    def close(self) -> None:
        try:
            self._portal.call(self._client.aclose)
        finally:
            self._stack.close()


def open_session(
    driver: str,
    registry: Registry,
    tracer: Tracer,
    *,
    virtual: VirtualClock | None = None,
    **client_kwargs: Any,
) -> Session:
    """A session on ``driver`` ("sync", "asyncio", "trio"). ``virtual`` runs the client on that
    clock, with sleeps that advance it."""
    if virtual is not None:
        sleep: Callable[[float], object] = virtual.advance if driver == "sync" else virtual.asleep
        client_kwargs.update(clock=virtual, sleep=sleep)
    if driver == "sync":
        return SyncSession(registry, tracer, **client_kwargs)
    return AsyncSession(driver, registry, tracer, **client_kwargs)
