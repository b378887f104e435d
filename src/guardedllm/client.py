"""``Client``: the synchronous driver. It runs the engine's steps with ``httpx.Client`` and
``time.sleep``; every decision is the engine's (see ``engine.py``)."""

from __future__ import annotations

import random as _random
import threading
import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, cast, overload

import httpx
from opentelemetry import context as otel_context

from guardedllm import defaults
from guardedllm._clientbase import ClientBase
from guardedllm._request import chat_request, embedding_request
from guardedllm._shadows import ThreadShadows
from guardedllm._transport import (
    ACCEPT_ENCODING,
    ClientDefaults,
    attempt_ends_at,
    ensure_open,
    iter_body,
    open_direct,
    open_through,
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
from guardedllm.state._background import Background, StepInFlight, run_logged
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

__all__ = ["Client", "Stream"]

T = TypeVar("T")
# What a stream yields: always ``ChatCompletionChunk``. ``Stream`` takes it as a parameter so that
# ``Stream[ChatCompletionChunk]``, as openai spells it, is the type of a stream here too.
_ChunkT = TypeVar("_ChunkT", bound=ChatCompletionChunk)


class Stream(Generic[_ChunkT]):
    """The chunks of a streamed call, as ``openai.Stream`` gives them.

    Iterate it, or use it as a context manager so that leaving early closes the connection.
    ``guard`` describes the call; its ``cost_usd`` is set once the stream has completed.
    A stream that breaks after its first chunk raises ``StreamInterruptedError``.
    """

    def __init__(self, start: StreamStart, response: httpx.Response, body: Iterator[bytes]):
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

    def __iter__(self) -> Iterator[_ChunkT]:
        return self._chunks  # type: ignore[return-value]  # only ever ChatCompletionChunk

    def __next__(self) -> _ChunkT:
        return next(self._chunks)  # type: ignore[return-value]

    def close(self) -> None:
        """Stop reading and release the connection. Safe to call at any time, twice too."""
        try:
            self._chunks.close()
        finally:
            # A generator never started runs no ``finally`` on close: settle here as well.
            self._tracker.abandon()
            _settle_guards(self._tracker)
            self.response.close()

    def __enter__(self) -> Stream[_ChunkT]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _read_chunks(
    start: StreamStart, response: httpx.Response, body: Iterator[bytes]
) -> Generator[ChatCompletionChunk, None, None]:
    tracker = start.tracker
    try:
        yield from tracker.first(start.first_chunks)
        for data in body:
            yield from tracker.feed(data)
        yield from tracker.finish()
    except (httpx.TransportError, httpx.DecodingError) as exc:
        raise tracker.interrupted(transport_error(exc, tracker.target)) from exc
    finally:
        tracker.abandon()  # a no-op once the stream has ended either way
        _settle_guards(tracker)
        response.close()


def _settle_guards(tracker: StreamTracker) -> None:
    """Run what the stream's end left for the guards (on a shared store: round trips, which
    this thread may wait on)."""
    pending = tracker.take_pending()
    if pending is not None:
        pending()


def _transport_failure(exc: Exception, step: Send, cap_at: float) -> Failed:
    """An httpx failure as the attempt's outcome; a timeout at the attempt's cap (a capped
    socket's) reads as the async driver's cancel scope does."""
    if isinstance(exc, httpx.TimeoutException) and time.monotonic() >= cap_at:
        return Failed(error=too_slow(step))
    return Failed(error=transport_error(exc, step.target))


class _Completions:
    def __init__(self, client: Client) -> None:
        self._client = client

    @overload
    def create(
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
    def create(
        self,
        *,
        model: str,
        messages: Sequence[ChatCompletionMessageParam],
        stream: Literal[True],
        policy: Policy | None = None,
        timeout: float | None = None,
        **params: Unpack[CompletionParams],
    ) -> Stream[ChatCompletionChunk]: ...

    @overload
    def create(
        self,
        *,
        model: str,
        messages: Sequence[ChatCompletionMessageParam],
        stream: bool,
        policy: Policy | None = None,
        timeout: float | None = None,
        **params: Unpack[CompletionParams],
    ) -> ChatCompletion | Stream[ChatCompletionChunk]: ...

    def create(
        self,
        *,
        model: str,
        messages: Sequence[ChatCompletionMessageParam],
        stream: bool = False,
        policy: Policy | None = None,
        timeout: float | None = None,
        **params: Unpack[CompletionParams],
    ) -> ChatCompletion | Stream[ChatCompletionChunk]:
        """Send a chat completion, OpenAI-style. Returns a ``ChatCompletion``, or a ``Stream``
        of ``ChatCompletionChunk`` with ``stream=True``. ``policy`` overrides the guards for this
        call; ``timeout`` bounds each HTTP attempt (the policy's deadline bounds the call). The
        arguments' types are in ``guardedllm.params``."""
        request = chat_request(model=model, messages=messages, stream=stream, **params)  # type: ignore[arg-type]  # checked at run time
        policy = call_policy(policy, timeout)
        return self._client._call(request, policy)

    def parse(
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
        completion = self.create(
            model=model,
            messages=messages,
            response_format=sent,
            policy=policy,
            timeout=timeout,
            **params,
        )
        return with_parsed(completion, model_class)


class _Chat:
    def __init__(self, client: Client) -> None:
        self.completions = _Completions(client)


class _Embeddings:
    def __init__(self, client: Client) -> None:
        self._client = client

    def create(
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
        result = self._client._drive(
            self._client._engine.run(request, policy, context=otel_context.get_current())
        )
        if not isinstance(result, CreateEmbeddingResponse):  # the engine broke its protocol
            raise TypeError(f"an embeddings call was answered with {type(result).__name__}")
        return result


class Client(ClientBase):
    """A guarded, OpenAI-shaped chat client over every provider in a registry.

    ``Client.from_config("guardedllm.toml", env="prod")`` loads and validates a config;
    ``Client(registry=...)`` takes one built in code. ``http_client`` lets you bring your own
    ``httpx.Client`` (proxies, certificates, a test transport); the client then does not close
    it, and adds to it only what its own calls need: its pools' sockets keep each attempt to
    its time limit, and a request hook keeps keys off other origins' redirects (see
    docs/guards.md, "Sync and async"). ``state`` keeps the guards' state elsewhere than in
    this process: ``RedisBackend``, shared by every process of a service (docs/fleet.md);
    ``state_on_error`` says what happens while it fails: "local" (the default) carries on
    with this process's own state, "refuse" fails calls under a spend budget with
    ``StateError``. ``record`` writes a JSON line per call for ``guardedllm simulate`` and
    ``compare`` (a ``RecordConfig``: docs/record-format.md), from a background thread that a
    call never waits on. ``clock``, ``sleep`` and ``random`` exist for tests on virtual time.
    """

    def __init__(
        self,
        registry: Registry,
        *,
        policy: Policy | None = None,
        http_client: httpx.Client | None = None,
        transport: httpx.BaseTransport | None = None,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
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
        self._http = http_client or httpx.Client(
            transport=transport,
            timeout=defaults.TIMEOUT_S,
            # Compressed only as _decoding.py decodes against the size cap.
            headers={"user-agent": USER_AGENT, "accept-encoding": ACCEPT_ENCODING},
            follow_redirects=False,
        )
        # Our own client's defaults, for sending straight to its transport (see _transport.py).
        self._direct = ClientDefaults(self._http) if self._owns_http else None
        if http_client is not None:  # ours never follows a redirect
            strip_keys_on_redirect(http_client)
        from guardedllm._capped import cap_pools  # httpcore is loaded by now, with the pool

        cap_pools(self._http)
        self._sleep = sleep
        self.chat = _Chat(self)
        self.embeddings = _Embeddings(self)
        self._shadows = ThreadShadows(self._engine, self._drive)
        # Where a state step bounded by its call's deadline runs (a thread only when one is).
        self._background = Background()

    def estimate(
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
        return self._drive(self._engine.estimate(request, current_policy(policy)))

    def _drive(self, flow: Generator[Step, Outcome | None, T]) -> T:
        """Carry out the engine's steps until it returns."""
        try:
            step = next(flow)
            while True:
                outcome: Outcome | None = None
                if isinstance(step, StateStep) and step.timeout_s is not None:
                    # Bounded by the deadline: run in a worker thread and waited for up to the
                    # bound; a step still running then is left to its thread, and the flow
                    # hears it is late and queues its cleanup after it (``Late.then``).
                    pending = StepInFlight(step.run, later=run_logged)
                    self._background.submit(pending)
                    if not pending.wait(step.timeout_s):
                        outcome = Late(then=pending.then)
                    elif pending.error is not None:
                        step = flow.throw(pending.error)
                        continue
                    else:
                        outcome = Stated(value=pending.value)
                elif isinstance(step, StateStep):
                    try:
                        outcome = Stated(value=step.run())
                    except Exception as exc:  # the engine decides what a store's failure means
                        step = flow.throw(exc)
                        continue
                elif isinstance(step, Sleep):
                    self._sleep(step.seconds)
                else:
                    ensure_open(self._http, own=self._owns_http)
                    outcome = self._race(step) if isinstance(step, Race) else self._send(step)
                step = flow.send(outcome)
        except StopIteration as done:
            result: T = done.value
            return result
        finally:
            flow.close()  # on an interrupt, lets the engine let go of what it holds

    def _call(
        self, request: ChatRequest, policy: Policy | None
    ) -> ChatCompletion | Stream[ChatCompletionChunk]:
        result = self._drive(self._engine.run(request, policy, context=otel_context.get_current()))
        if isinstance(result, CreateEmbeddingResponse):  # only an embeddings request makes one
            raise TypeError("a chat call was answered with embeddings")
        if isinstance(result, StreamStart):
            response, body = cast("tuple[httpx.Response, Iterator[bytes]]", result.handle)
            stream: Stream[ChatCompletionChunk] = Stream(result, response, body)
            return stream
        return result

    def _race(self, race: Race) -> Raced:
        """Run a hedged attempt on two threads. A loser still in flight when the winner
        answers finishes in the background and is discarded (a blocking read cannot be
        cancelled); its connection goes back to the pool when it ends. A losing stream is
        closed as soon as it has started, so none of its chunks reaches the caller."""
        outcomes: list[Answered | StreamStarted | Failed | None] = [None, None]
        latencies = [0.0, 0.0]
        lock = threading.Lock()
        kept: list[int | None] = []  # once decided: the side kept (None: neither)

        def attempt(index: int, step: Send) -> int:
            started = time.monotonic()
            outcome = self._send(step)
            with lock:
                outcomes[index] = outcome
                latencies[index] = time.monotonic() - started
                if kept and kept[0] != index:  # the race is over: this side lost it
                    _close_started(outcome)
            return index

        launched = False

        def raced(winner: int | None) -> Raced:
            with lock:
                kept.append(winner)
                for index, outcome in enumerate(outcomes):
                    if index != winner:
                        _close_started(outcome)
                return Raced(
                    outcomes=(outcomes[0], outcomes[1]),
                    latencies=(latencies[0], latencies[1]),
                    winner=winner,
                    launched=launched,
                )

        pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="guardedllm-hedge")
        try:
            done, running = wait({pool.submit(attempt, 0, race.first)}, timeout=race.delay_s)
            if not done:
                running.add(pool.submit(attempt, 1, race.second))
                launched = True
            while True:
                for future in done:
                    index = future.result()
                    if succeeded(outcomes[index]):
                        return raced(index)
                if not running:
                    return raced(None)
                done, running = wait(running, return_when=FIRST_COMPLETED)
        finally:
            with lock:  # interrupted: no side is kept, and a stream started is closed
                if not kept:
                    kept.append(None)
                    for outcome in outcomes:
                        _close_started(outcome)
            pool.shutdown(wait=False, cancel_futures=True)

    def _send(self, step: Send) -> Answered | StreamStarted | Failed:
        # A blocking read cannot be cut short from outside. The attempt's cap is kept by the
        # sockets of a capped pool (``_capped.py``), which shorten each connect, write and read
        # to what is left of it, and checked between reads for a transport without one.
        cap_at = time.monotonic() + step.timeout_s
        capped = attempt_ends_at.set(cap_at)
        try:
            return self._attempt(step, cap_at)
        finally:
            attempt_ends_at.reset(capped)

    def _attempt(self, step: Send, cap_at: float) -> Answered | StreamStarted | Failed:
        try:
            response = self._open(step.request, streaming=step.decoder is not None)
        except httpx.TransportError as exc:
            return _transport_failure(exc, step, cap_at)
        keep_open = False
        try:
            body = iter_body(response)
            if step.decoder is not None and response.status_code < 300:
                for data in body:
                    if time.monotonic() > cap_at:  # the first chunk came too late
                        return Failed(error=too_slow(step))
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
            for data in body:
                buffer.add(data)
                if time.monotonic() > cap_at:  # a server trickling bytes to outlast the cap
                    return Failed(error=too_slow(step))
            return Answered(
                status=response.status_code, headers=response.headers, body=buffer.value()
            )
        except (httpx.TransportError, httpx.DecodingError) as exc:
            return _transport_failure(exc, step, cap_at)
        except GuardedLLMError as exc:
            return Failed(error=exc)
        finally:
            if not keep_open:
                response.close()

    def _open(self, request: httpx.Request, *, streaming: bool) -> httpx.Response:
        """Send ``request``; the response's body is left to read."""
        if self._direct is not None:
            return open_direct(self._http, request, self._direct, timed=streaming)
        return open_through(self._http, request)

    def close(self) -> None:
        """Close the connection pool (unless it was your own ``http_client``). Shadow copies
        still running are abandoned at their next step; the pool closes once they have let
        go of it, and so does the state store ``from_config`` opened."""

        def release() -> None:
            if self._owns_http:
                self._http.close()
            self._background.close()  # a late state step finishes, and what it held goes
            self._close_state()
            self._close_recorder()  # last: the copies' records and pairs are queued by now

        self._shadows.close(then=release)

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _close_started(outcome: object) -> None:
    """Close the response of a stream that lost a hedged race (its chunks go to no one)."""
    if isinstance(outcome, StreamStarted):
        response, _ = cast("tuple[httpx.Response, Iterator[bytes]]", outcome.handle)
        response.close()
