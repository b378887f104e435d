"""``AsyncClient``: the async driver. It runs the engine's steps with ``httpx.AsyncClient`` and
``anyio.sleep``, on asyncio or trio; every decision is the engine's (see ``engine.py``)."""

from __future__ import annotations

import builtins
import random as _random
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Mapping,
    Sequence,
)
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, cast, overload

import anyio
import anyio.to_thread
import httpx
from opentelemetry import context as otel_context

from guardedllm import defaults
from guardedllm._clientbase import ClientBase
from guardedllm._request import chat_request, embedding_request
from guardedllm._shadows import TaskShadows
from guardedllm._transport import (
    ACCEPT_ENCODING,
    ClientDefaults,
    DefaultAsyncTransport,
    afinish_body,
    aiter_body,
    aopen_direct,
    aopen_through,
    attempt_bound,
    ensure_open,
    strip_keys_on_redirect,
)
from guardedllm._version import USER_AGENT
from guardedllm.engine import (
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
    StreamTracker,
    stream_ended_early,
    succeeded,
    too_slow,
    transport_error,
)
from guardedllm.errors import ArgumentTypeError, GuardedLLMError
from guardedllm.estimate import Estimate
from guardedllm.policy import Policy, call_policy, current_policy
from guardedllm.registry import RecordConfig, Registry
from guardedllm.state._background import Background, StepInFlight
from guardedllm.types import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatRequest,
    CreateEmbeddingResponse,
    GuardInfo,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from guardedllm.guards import BreakerConfig, RetryBudgetConfig, SpendBudget
    from guardedllm.params import (
        ChatCompletionMessageParam,
        CompletionParams,
        ParseParams,
        ResponseFormat,
    )
    from guardedllm.record import Recorder
    from guardedllm.state import StateBackend
    from guardedllm.state.failover import OnError
    from guardedllm.telemetry import Telemetry

__all__ = ["AsyncClient", "AsyncStream"]

T = TypeVar("T")
# What a stream yields: always ``ChatCompletionChunk`` (see ``client.Stream``).
_ChunkT = TypeVar("_ChunkT", bound=ChatCompletionChunk)


class AsyncStream(Generic[_ChunkT]):
    """The chunks of a streamed call, as ``openai.AsyncStream`` gives them.

    ``async for`` over it, or use ``async with`` so that leaving early closes the connection.
    ``guard`` describes the call; its ``cost_usd`` is set once the stream has completed.
    A stream that breaks after its first chunk raises ``StreamInterruptedError``.
    """

    def __init__(
        self, start: StreamStart, response: httpx.Response, body: AsyncIterator[bytes]
    ) -> None:
        self._tracker = start.tracker
        self.response = response
        # A function's generator, not a method's: one holding the stream would make a cycle
        # that only the garbage collector frees, with every chunk the tracker keeps.
        self._chunks = _read_chunks(start, response, body)

    @property
    def guard(self) -> GuardInfo:
        return self._tracker.guard

    @property
    def completed(self) -> bool:
        """True once the vendor's terminal event has arrived."""
        return self._tracker.completed

    def __aiter__(self) -> AsyncIterator[_ChunkT]:
        return self._chunks  # type: ignore[return-value]  # only ever ChatCompletionChunk

    async def __anext__(self) -> _ChunkT:
        return await self._chunks.__anext__()  # type: ignore[return-value]

    async def aclose(self) -> None:
        """Stop reading and release the connection. Safe to call at any time, twice too."""
        try:
            await self._chunks.aclose()
        finally:
            # A generator never started runs no ``finally`` on close: settle here as well.
            self._tracker.abandon()
            with anyio.CancelScope(shield=True):
                await _settle_guards(self._tracker)
                await self.response.aclose()

    async def __aenter__(self) -> AsyncStream[_ChunkT]:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


async def _read_chunks(
    start: StreamStart, response: httpx.Response, body: AsyncIterator[bytes]
) -> AsyncGenerator[ChatCompletionChunk, None]:
    tracker = start.tracker
    try:
        for chunk in tracker.first(start.first_chunks):
            yield chunk
        async for data in body:
            for chunk in tracker.feed(data):
                yield chunk
        for chunk in tracker.finish():
            yield chunk
    except (httpx.TransportError, httpx.DecodingError) as exc:
        raise tracker.interrupted(transport_error(exc, tracker.target)) from exc
    finally:
        tracker.abandon()  # a no-op once the stream has ended either way
        with anyio.CancelScope(shield=True):
            await _settle_guards(tracker)
            await afinish_body(response, body)


async def _settle_guards(tracker: StreamTracker) -> None:
    """Run what the stream's end left for the guards (on a shared store: round trips) in a
    worker thread, never on the event loop."""
    pending = tracker.take_pending()
    if pending is not None:
        await anyio.to_thread.run_sync(pending)


class _AsyncCompletions:
    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    @overload
    async def create(
        self,
        *,
        model: str,
        messages: Sequence[ChatCompletionMessageParam],
        stream: Literal[False] = False,
        policy: Policy | None = None,
        timeout: float | None = None,
        **params: Unpack[CompletionParams],
    ) -> ChatCompletion: ...

    @overload
    async def create(
        self,
        *,
        model: str,
        messages: Sequence[ChatCompletionMessageParam],
        stream: Literal[True],
        policy: Policy | None = None,
        timeout: float | None = None,
        **params: Unpack[CompletionParams],
    ) -> AsyncStream[ChatCompletionChunk]: ...

    @overload
    async def create(
        self,
        *,
        model: str,
        messages: Sequence[ChatCompletionMessageParam],
        stream: bool,
        policy: Policy | None = None,
        timeout: float | None = None,
        **params: Unpack[CompletionParams],
    ) -> ChatCompletion | AsyncStream[ChatCompletionChunk]: ...

    async def create(
        self,
        *,
        model: str,
        messages: Sequence[ChatCompletionMessageParam],
        stream: bool = False,
        policy: Policy | None = None,
        timeout: float | None = None,
        **params: Unpack[CompletionParams],
    ) -> ChatCompletion | AsyncStream[ChatCompletionChunk]:
        """Send a chat completion, OpenAI-style. Returns a ``ChatCompletion``, or an
        ``AsyncStream`` of ``ChatCompletionChunk`` with ``stream=True``. ``policy`` overrides the
        guards for this call; ``timeout`` bounds each HTTP attempt. The arguments' types are in
        ``guardedllm.params``."""
        request = chat_request(model=model, messages=messages, stream=stream, **params)  # type: ignore[arg-type]  # checked at run time
        policy = call_policy(policy, timeout)
        return await self._client._call(request, policy)

    async def parse(
        self,
        *,
        model: str,
        messages: Sequence[ChatCompletionMessageParam],
        response_format: type[Any] | ResponseFormat,
        policy: Policy | None = None,
        timeout: float | None = None,
        **params: Unpack[ParseParams],
    ) -> ChatCompletion:
        """A chat completion whose answer follows ``response_format``, as openai-python's
        ``parse``: a pydantic model class is sent as a strict ``json_schema`` format, and each
        answered choice's ``message.parsed`` is the content read into it (a format dict is sent
        as it is, and ``parsed`` stays None). An answer that does not fit raises
        ``StructuredOutputError`` (unless the route escalates), with the answer attached."""
        from guardedllm._structured import parse_format, with_parsed

        sent, model_class = parse_format(response_format)
        completion = await self.create(
            model=model,
            messages=messages,
            response_format=sent,
            policy=policy,
            timeout=timeout,
            **params,
        )
        return with_parsed(completion, model_class)


class _AsyncChat:
    def __init__(self, client: AsyncClient) -> None:
        self.completions = _AsyncCompletions(client)


class _AsyncEmbeddings:
    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def create(
        self,
        *,
        model: str,
        input: str | Sequence[str] | Sequence[int] | Sequence[Sequence[int]],
        dimensions: int | None = None,
        encoding_format: Literal["float", "base64"] | None = None,
        user: str | None = None,
        policy: Policy | None = None,
        timeout: float | None = None,
        extra_headers: Mapping[str, str] | None = None,
        extra_body: Mapping[str, Any] | None = None,
        provider_options: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> CreateEmbeddingResponse:
        """Embed ``input`` (a text, a list of texts, or token ids), OpenAI-style, through the
        same guards as a chat call: cost caps and spend budgets, rate limits, the breaker, the
        retry budget, fallback among the route's embedding models, one deadline. Returns a
        ``CreateEmbeddingResponse``; ``encoding_format="base64"`` gives each vector as base64
        of little-endian float32, whatever vendor answered. A batch over the model's limits is
        refused before sending with ``EmbeddingBatchError``; a chat model, with
        ``ModelKindError``."""
        request = embedding_request(
            model=model,
            input=input,
            dimensions=dimensions,
            encoding_format=encoding_format,
            user=user,
            extra_headers=extra_headers,
            extra_body=extra_body,
            provider_options=provider_options,
        )
        policy = call_policy(policy, timeout)
        result = await self._client._drive(
            self._client._engine.run(request, policy, context=otel_context.get_current())
        )
        if not isinstance(result, CreateEmbeddingResponse):  # the engine broke its protocol
            raise TypeError(f"an embeddings call was answered with {type(result).__name__}")
        return result


class AsyncClient(ClientBase):
    """The async twin of ``Client``: same arguments, same guards, same results.

    By default it sends through aiohttp's connection pool under asyncio and httpx's under trio
    (see ``_transport.py`` for the measurement behind that). ``http_client`` lets you bring your
    own ``httpx.AsyncClient``; the client then does not close it, and adds to it one request
    hook that keeps keys off other origins' redirects (see docs/guards.md). Use one
    ``AsyncClient`` per event loop, and close it (``async with`` or ``aclose``) in that loop.
    ``state`` takes the same backends as ``Client``'s, the sync ``RedisBackend`` included: its
    round trips run in worker threads, never on the event loop (so asyncio and trio alike).
    ``record`` as ``Client``'s: a call hands its record to the writer's queue without waiting,
    and ``aclose`` waits for the writer in a worker thread.
    """

    def __init__(
        self,
        registry: Registry,
        *,
        policy: Policy | None = None,
        http_client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        random: Callable[[], float] = _random.random,
        max_response_bytes: int = defaults.MAX_RESPONSE_BYTES,
        state: StateBackend | None = None,
        breaker: BreakerConfig | None = None,
        retry_budget: RetryBudgetConfig | None = None,
        budgets: Sequence[SpendBudget] = (),
        telemetry: Telemetry | None = None,
        state_on_error: OnError = "local",
        record: RecordConfig | Recorder | None = None,
    ) -> None:
        if http_client is not None and transport is not None:
            raise ArgumentTypeError("give http_client or transport, not both")
        super().__init__(
            registry,
            policy=policy,
            environ=environ,
            clock=clock,
            random=random,
            max_response_bytes=max_response_bytes,
            state=state,
            breaker=breaker,
            retry_budget=retry_budget,
            budgets=budgets,
            telemetry=telemetry,
            state_on_error=state_on_error,
            record=record,
            owns_http=http_client is None,
        )
        self._http = http_client or httpx.AsyncClient(
            transport=transport or DefaultAsyncTransport(),
            timeout=defaults.TIMEOUT_S,
            # Compressed only as _decoding.py decodes against the size cap.
            headers={"user-agent": USER_AGENT, "accept-encoding": ACCEPT_ENCODING},
            follow_redirects=False,
        )
        # Our own client's defaults, for sending straight to its transport (see _transport.py).
        self._direct = ClientDefaults(self._http) if self._owns_http else None
        if http_client is not None:  # ours never follows a redirect
            strip_keys_on_redirect(http_client)
        self._sleep = sleep
        self.chat = _AsyncChat(self)
        self.embeddings = _AsyncEmbeddings(self)
        self._shadows = TaskShadows(self._engine, self._drive)
        # Where what a cancelled call holds on a shared store is let go of: a worker thread,
        # since the event loop must not wait on the store and the closed flow cannot yield.
        self._background = Background()
        self._engine.run_later = self._background.submit

    async def estimate(
        self,
        *,
        model: str,
        messages: Sequence[ChatCompletionMessageParam],
        policy: Policy | None = None,
        **params: Unpack[CompletionParams],
    ) -> Estimate:
        """Tokens, worst-case cost and context fit of a call, without sending it (with
        ``Policy(exact_tokens=True)``, a vendor count-tokens request is the one thing sent)."""
        request = chat_request(model=model, messages=messages, **params)  # type: ignore[arg-type]  # checked at run time
        return await self._drive(self._engine.estimate(request, current_policy(policy)))

    async def _drive(self, flow: Generator[Step, Outcome | None, T]) -> T:
        """Carry out the engine's steps until it returns."""
        try:
            step = next(flow)
            while True:
                outcome: Outcome | None = None
                if isinstance(step, StateStep) and step.timeout_s is not None:
                    # Bounded by the deadline: a cancellation waits up to the bound (the
                    # shield), and a step still running then is left to its thread; the flow
                    # hears it is late and queues its cleanup after it (``Late.then``).
                    pending = StepInFlight(step.run, later=self._background.submit)
                    with anyio.CancelScope(shield=True), anyio.move_on_after(step.timeout_s):
                        await anyio.to_thread.run_sync(pending, abandon_on_cancel=True)
                    if not pending.finished:
                        outcome = Late(then=pending.then)
                    elif pending.error is not None:
                        step = flow.throw(pending.error)
                        continue
                    else:
                        outcome = Stated(value=pending.value)
                elif isinstance(step, StateStep):
                    # A worker thread, so that no event loop waits on the store (a thread is
                    # never abandoned: a cancellation waits for the phase to finish, so that
                    # the flow, then closed, knows what the phase took).
                    try:
                        outcome = Stated(value=await anyio.to_thread.run_sync(step.run))
                    except Exception as exc:  # the engine decides what a store's failure means
                        step = flow.throw(exc)
                        continue
                elif isinstance(step, Sleep):
                    await self._sleep(step.seconds)
                else:
                    ensure_open(self._http, own=self._owns_http)
                    outcome = (
                        await self._race(step) if isinstance(step, Race) else await self._send(step)
                    )
                step = flow.send(outcome)
        except StopIteration as done:
            result: T = done.value
            return result
        finally:
            flow.close()  # on a cancellation, lets the engine let go of what it holds

    async def _call(
        self, request: ChatRequest, policy: Policy | None
    ) -> ChatCompletion | AsyncStream[ChatCompletionChunk]:
        flow = self._engine.run(request, policy, context=otel_context.get_current())
        result = await self._drive(flow)
        if isinstance(result, CreateEmbeddingResponse):  # only an embeddings request makes one
            raise TypeError("a chat call was answered with embeddings")
        if isinstance(result, StreamStart):
            response, body = cast("tuple[httpx.Response, AsyncIterator[bytes]]", result.handle)
            stream: AsyncStream[ChatCompletionChunk] = AsyncStream(result, response, body)
            return stream
        return result

    async def _race(self, race: Race) -> Raced:
        """Run a hedged attempt as two tasks; the first success cancels the other. A losing
        stream that started all the same (both sides answered at once) is closed before any
        of its chunks reaches the caller, and so is every started stream when the race itself
        is cancelled."""
        outcomes: list[Answered | StreamStarted | Failed | None] = [None, None]
        latencies = [0.0, 0.0]
        winner: int | None = None
        launched = False
        first_done = anyio.Event()

        try:
            async with anyio.create_task_group() as group:

                async def attempt(index: int, step: Send) -> None:
                    nonlocal winner
                    started = time.monotonic()
                    outcome = await self._send(step)
                    outcomes[index] = outcome
                    latencies[index] = time.monotonic() - started
                    if index == 0:
                        first_done.set()
                    if winner is None and succeeded(outcome):
                        winner = index
                        group.cancel_scope.cancel()

                group.start_soon(attempt, 0, race.first)
                with anyio.move_on_after(race.delay_s):
                    await first_done.wait()
                if not first_done.is_set():
                    group.start_soon(attempt, 1, race.second)
                    launched = True
        except BaseException:
            winner = None
            raise
        finally:
            for index, outcome in enumerate(outcomes):
                if index != winner:
                    await _aclose_started(outcome)
        return Raced(
            outcomes=(outcomes[0], outcomes[1]),
            latencies=(latencies[0], latencies[1]),
            winner=winner,
            launched=launched,
        )

    async def _send(self, step: Send) -> Answered | StreamStarted | Failed:
        # The attempt's timeout is also a hard cap on the whole attempt (connect, headers and
        # body, or a stream's first chunk), so a server that trickles bytes cannot outlast it.
        response: httpx.Response | None = None
        body: AsyncIterator[bytes] | None = None
        keep_open = False
        try:
            async with attempt_bound(step.timeout_s):
                response = await self._open(step.request, streaming=step.decoder is not None)
                body = aiter_body(response)
                if step.decoder is not None and response.status_code < 300:
                    async for data in body:
                        chunks = step.decoder.feed(data)
                        if chunks:
                            keep_open = True
                            return StreamStarted(
                                first_chunks=tuple(chunks),
                                handle=(response, body),
                                decoder=step.decoder,
                                headers=response.headers,
                            )
                    step.decoder.close()
                    return Failed(error=stream_ended_early(step.target))
                buffer = BodyBuffer(step.max_body_bytes, step.target)
                async for data in body:
                    buffer.add(data)
                return Answered(
                    status=response.status_code, headers=response.headers, body=buffer.value()
                )
            # Every way through the block returns or raises: here, the deadline cancelled it.
            return Failed(error=too_slow(step))
        except builtins.TimeoutError:  # the bound's, or one raised inside (an OS-level timeout)
            return Failed(error=too_slow(step))
        except (httpx.TransportError, httpx.DecodingError) as exc:
            return Failed(error=transport_error(exc, step.target))
        except GuardedLLMError as exc:
            return Failed(error=exc)
        finally:
            # A body read to its end has closed itself; no shielded scope needed for it. One
            # left mid-way (a refused chunk, a body over its cap) is finished here, not left to
            # the garbage collector, which trio warns of.
            if response is not None and not keep_open and not response.is_closed:
                with anyio.CancelScope(shield=True):
                    await afinish_body(response, body)

    async def _open(self, request: httpx.Request, *, streaming: bool) -> httpx.Response:
        """Send ``request``; the response's body is left to read."""
        if self._direct is not None:
            return await aopen_direct(self._http, request, self._direct, timed=streaming)
        return await aopen_through(self._http, request)

    async def aclose(self) -> None:
        """Close the connection pool (unless it was your own ``http_client``) and the state
        store ``from_config`` opened. Shadow copies still running are cancelled."""
        await self._shadows.cancel()
        with anyio.CancelScope(shield=True):  # what cancelled calls held is let go of first
            await anyio.to_thread.run_sync(self._background.close)
            await anyio.to_thread.run_sync(self._close_state)
            await anyio.to_thread.run_sync(self._close_recorder)  # never on the event loop
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


async def _aclose_started(outcome: object) -> None:
    """Close the response of a stream that lost a hedged race (its chunks go to no one)."""
    if isinstance(outcome, StreamStarted):
        response, body = cast("tuple[httpx.Response, AsyncIterator[bytes]]", outcome.handle)
        with anyio.CancelScope(shield=True):
            await afinish_body(response, body)
