"""The sans-IO call planner: one logical call, driven through attempts, never doing I/O.

``Engine.run`` is a generator in the manner of httpx's ``Auth.auth_flow``: it yields steps —
``Send`` (one HTTP attempt) or ``Sleep`` (a backoff) — and receives the outcome of each, until it
returns a ``ChatCompletion`` or a ``StreamStart`` (a stream whose first chunk has arrived), or
raises. ``Client`` and ``AsyncClient`` run the same generator and differ only in how they send,
sleep and read bytes, so every decision (what to try, when to retry, when to fall back, when to
give up) lives here once.

Invariants:
- One deadline per call covers every attempt, backoff and fallback; no step is yielded after it.
- A retry is never slept into the deadline: a backoff (or a Retry-After floor) that would cross
  it moves on to the next deployment instead, or fails at once with the wait attached.
- Client errors (400/401/403/413/422) fail the call at once; they would fail anywhere.
- A stream is retried or failed over only before its first chunk reaches the caller.
"""

from __future__ import annotations

import random as _random
import time
from collections.abc import Callable, Generator, Mapping
from typing import Literal

import attrs
import httpx

from guardedllm import defaults
from guardedllm.errors import (
    AllRoutesFailedError,
    AuthenticationError,
    BudgetExceededError,
    ConnectError,
    ConnectionDroppedError,
    ContextWindowExceededError,
    DeadlineExceededError,
    GuardedLLMError,
    InvalidRequestError,
    ModelNotFoundError,
    ProviderError,
    RateLimitedError,
    ResponseFormatError,
    StreamInterruptedError,
    TimeoutError,
    TransportError,
)
from guardedllm.estimate import Calibrator, Estimate, with_counted_input
from guardedllm.policy import Policy
from guardedllm.providers import wire_format_for
from guardedllm.providers.base import StreamDecoder, Target, TokenCounter, WireFormat
from guardedllm.registry import Deployment, Registry
from guardedllm.routing import Plan, plan_route, prices_of, usage_cost
from guardedllm.types import (
    Attempt,
    ChatCompletion,
    ChatCompletionChunk,
    ChatRequest,
    GuardInfo,
    Usage,
)

__all__ = [
    "Answered",
    "BodyBuffer",
    "Engine",
    "Failed",
    "Outcome",
    "Send",
    "Sleep",
    "StreamStart",
    "StreamStarted",
    "StreamTracker",
    "stream_ended_early",
    "transport_error",
    "with_client_headers",
]

# --------------------------------------------------------------------------- steps and outcomes


@attrs.frozen(kw_only=True)
class Send:
    """Send ``request``. For a stream, read until ``decoder`` yields a first chunk."""

    request: httpx.Request
    target: Target
    decoder: StreamDecoder | None
    timeout_s: float
    max_body_bytes: int


@attrs.frozen(kw_only=True)
class Sleep:
    seconds: float


Step = Send | Sleep


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


@attrs.frozen(kw_only=True)
class Failed:
    """No usable answer: a transport failure, an unparseable body, or a vendor error event
    before the first chunk."""

    error: GuardedLLMError


Outcome = Answered | StreamStarted | Failed


@attrs.frozen(kw_only=True)
class StreamStart:
    """What ``run`` returns for a stream: the driver keeps reading ``handle`` through
    ``tracker``."""

    handle: object
    first_chunks: tuple[ChatCompletionChunk, ...]
    tracker: StreamTracker


# --------------------------------------------------------------------------- classification

Verdict = Literal["retry", "fallback", "fail"]

# What a vendor status means for the call. Anything >= 500 not listed retries; any other 4xx
# not listed fails. 404 falls back without a retry: the model is missing here, not flaky.
STATUS_VERDICTS: Mapping[int, Verdict] = {
    400: "fail",
    401: "fail",
    403: "fail",
    404: "fallback",
    408: "retry",
    409: "retry",
    413: "fail",
    422: "fail",
    429: "retry",
}


def classify(error: GuardedLLMError) -> Verdict:
    """Whether a failed attempt is worth retrying, worth trying elsewhere, or final."""
    if isinstance(error, ModelNotFoundError):
        return "fallback"
    if isinstance(error, ProviderError) and error.status is not None:
        if error.status >= 500:
            return "retry"
        return STATUS_VERDICTS.get(error.status, "fail")
    if isinstance(error, InvalidRequestError):
        return "fail"
    return "retry"  # transport failures, unparseable bodies, error events before any chunk


# httpx's transport exceptions, by the class of ours they become (most specific first).
_TRANSPORT_ERRORS: tuple[tuple[type[Exception], type[TransportError], str], ...] = (
    (httpx.ConnectTimeout, TimeoutError, "timed out connecting"),
    (httpx.TimeoutException, TimeoutError, "timed out"),
    (httpx.ConnectError, ConnectError, "could not connect"),
    (httpx.RemoteProtocolError, ConnectionDroppedError, "dropped the connection"),
    (httpx.ReadError, ConnectionDroppedError, "dropped the connection"),
    (httpx.WriteError, ConnectionDroppedError, "dropped the connection"),
)


def transport_error(exc: Exception, target: Target) -> TransportError:
    """Our error for an httpx transport failure on ``target``."""
    cls, what = TransportError, "failed"
    for source, mapped, text in _TRANSPORT_ERRORS:
        if isinstance(exc, source):
            cls, what = mapped, text
            break
    detail = str(exc) or type(exc).__name__
    return cls(
        f"{target.deployment}: {target.provider} {what} ({detail}). It is retried or falls "
        "back while the deadline allows; check base_url and network if it persists.",
        deployment=target.deployment,
    )


# --------------------------------------------------------------------------- the engine


@attrs.frozen(kw_only=True)
class _Settings:
    deadline_s: float
    max_attempts: int
    timeout_s: float
    max_cost_usd: float | None


class Engine:
    """Plans and decides every call for one client. Holds no I/O, only the registry, the
    client-wide policy and the injected clock, wall clock and random source."""

    def __init__(
        self,
        registry: Registry,
        *,
        policy: Policy | None = None,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        random: Callable[[], float] = _random.random,
        max_body_bytes: int = defaults.MAX_RESPONSE_BYTES,
    ) -> None:
        self.registry = registry
        self.policy = policy
        self._environ = environ
        self._clock = clock
        self._wall_clock = wall_clock
        self._random = random
        self._max_body_bytes = max_body_bytes
        self._wires: dict[str, WireFormat] = {}
        self.calibrator = Calibrator()

    # ---------------------------------------------------------------- public helpers

    def estimate(
        self, request: ChatRequest, policy: Policy | None = None
    ) -> Generator[Step, Outcome | None, Estimate]:
        """The pre-flight estimate for the first deployment the call would be sent to. It
        sends nothing unless the policy asks for exact counts from the vendor."""
        effective = self._policy(policy)
        plan = self._plan(request, effective)
        deployment = plan.deployments[0]
        estimate = plan.estimate(deployment)
        if effective.exact_tokens and not estimate.exact:
            target = self.target(deployment)
            estimate = yield from self._counted(
                request,
                plan=plan,
                deployment=deployment,
                estimate=estimate,
                target=target,
                wire=self.wire(target.kind),
                timeout=self._settings(effective, plan).timeout_s,
            )
        return estimate

    def target(self, deployment: Deployment) -> Target:
        """Where an attempt on ``deployment`` goes, with the API key read now."""
        provider = self.registry.provider_of(deployment)
        environ = self._environ
        api_key = provider.api_key() if environ is None else provider.api_key(environ)
        if api_key is None and provider.api_key_env is not None:
            raise AuthenticationError(
                f"{deployment.name}: environment variable {provider.api_key_env} (api_key_env "
                f"of provider {provider.name!r}) is not set; export it before calling.",
                deployment=deployment.name,
            )
        return Target(
            deployment=deployment.name,
            provider=provider.name,
            kind=provider.kind,
            base_url=provider.base_url,
            model=deployment.model,
            api_key=api_key,
            api_version=provider.api_version,
            headers=provider.headers,
            max_output_tokens=deployment.max_output_tokens,
        )

    def wire(self, kind: str) -> WireFormat:
        wire = self._wires.get(kind)
        if wire is None:
            wire = self._wires[kind] = wire_format_for(kind)
        return wire

    # ---------------------------------------------------------------- the call

    def run(  # noqa: PLR0915 - the one decision loop reads best whole
        self, request: ChatRequest, policy: Policy | None = None
    ) -> Generator[Step, Outcome | None, ChatCompletion | StreamStart]:
        """Drive one logical call. See the module docstring for the protocol."""
        started = self._clock()
        effective = self._policy(policy)
        plan = self._plan(request, effective)
        settings = self._settings(effective, plan)
        deadline = started + settings.deadline_s
        attempts: list[Attempt] = []
        first_refusal: GuardedLLMError | None = None
        last_error: GuardedLLMError | None = None

        def fail(error: GuardedLLMError) -> GuardedLLMError:
            error.attempts = tuple(attempts)
            return error

        for index, deployment in enumerate(plan.deployments):
            has_next = index + 1 < len(plan.deployments)
            try:
                target = self.target(deployment)
                wire = self.wire(target.kind)
                estimate = plan.estimate(deployment)
                if effective.exact_tokens and not estimate.exact:
                    estimate = yield from self._counted(
                        request,
                        plan=plan,
                        deployment=deployment,
                        estimate=estimate,
                        target=target,
                        wire=wire,
                        timeout=min(settings.timeout_s, deadline - self._clock()),
                    )
                self._check_preflight(deployment, estimate, settings)
                http_request = wire.build_request(request, target)
            except (
                InvalidRequestError,
                AuthenticationError,
                ContextWindowExceededError,
                BudgetExceededError,
            ) as refusal:
                # Refused before sending: another deployment may fit, afford or express it.
                attempts.append(_skipped(deployment, refusal))
                first_refusal = first_refusal or refusal
                continue
            if request.extra_headers:
                http_request.headers.update(request.extra_headers)

            for number in range(1, settings.max_attempts + 1):
                remaining = deadline - self._clock()
                if remaining <= 0:
                    raise fail(_deadline_error(settings.deadline_s, plan)) from last_error
                timeout = min(settings.timeout_s, remaining)
                http_request.extensions["timeout"] = httpx.Timeout(timeout).as_dict()
                sent_at = self._clock()
                outcome = yield Send(
                    request=http_request,
                    target=target,
                    decoder=wire.stream_decoder(target) if request.stream else None,
                    timeout_s=timeout,
                    max_body_bytes=self._max_body_bytes,
                )
                latency = self._clock() - sent_at
                result, error, status = self._settle(outcome, wire, target)
                if error is None:
                    attempts.append(
                        _attempt(target, number, outcome="ok", status=status, latency=latency)
                    )
                    return self._finish(
                        request=request,
                        plan=plan,
                        estimate=estimate,
                        attempts=attempts,
                        started=started,
                        target=target,
                        outcome=outcome,
                        result=result,
                    )
                last_error = error
                verdict = classify(error)
                attempts.append(
                    _attempt(
                        target, number, outcome="error", status=status, latency=latency, error=error
                    )
                )
                if verdict == "fail":
                    raise fail(error)
                remaining = deadline - self._clock()
                if remaining <= 0:  # nothing else can be tried in time
                    raise fail(_deadline_error(settings.deadline_s, plan)) from error
                if verdict == "fallback" or number == settings.max_attempts:
                    break
                wait = self._backoff(number, error)
                if wait >= remaining:
                    retry_after = error.retry_after if isinstance(error, ProviderError) else None
                    if retry_after is not None and retry_after >= remaining and not has_next:
                        raise fail(_wait_too_long(error, retry_after, remaining)) from error
                    break  # no time to retry here; the next deployment may still answer
                yield Sleep(seconds=wait)

        if last_error is None and first_refusal is not None:
            raise fail(first_refusal)
        tried = ", ".join(d.name for d in plan.deployments)
        raise fail(
            AllRoutesFailedError(
                f"{plan.requested!r}: every deployment failed ({tried}); last error: "
                f"{last_error}. See .attempts for each try; check the providers' status, or add "
                "a fallback on another provider to the route.",
            )
        ) from last_error

    # ---------------------------------------------------------------- pieces of run

    def _wall(self) -> float:
        return self._wall_clock()

    def _plan(self, request: ChatRequest, policy: Policy) -> Plan:
        return plan_route(self.registry, request, policy, calibrator=self.calibrator)

    def _policy(self, policy: Policy | None) -> Policy:
        base = self.policy or Policy()
        return policy.over(base) if policy is not None else base

    def _settings(self, policy: Policy, plan: Plan) -> _Settings:
        config = self.registry.defaults
        return _Settings(
            deadline_s=policy.deadline_s or plan.deadline_s or config.deadline_s,
            max_attempts=policy.max_attempts or plan.max_attempts or config.max_attempts,
            timeout_s=policy.timeout_s or config.timeout_s,
            max_cost_usd=policy.max_cost_usd or plan.max_cost_usd,
        )

    def _check_preflight(
        self, deployment: Deployment, estimate: Estimate, settings: _Settings
    ) -> None:
        """Refuse a deployment the request cannot fit or afford, before anything is sent."""
        if not estimate.fits_context:
            raise ContextWindowExceededError(
                f"{deployment.name}: {estimate.input_tokens} input tokens + "
                f"{estimate.max_output_tokens} reserved for output exceed the "
                f"{deployment.context_window}-token context window. Shorten the messages, "
                "lower max_tokens, or route to a model with a larger window.",
                input_tokens=estimate.input_tokens,
                context_window=deployment.context_window,
            )
        cap = settings.max_cost_usd
        if cap is not None and estimate.cost_usd_max > cap:
            raise BudgetExceededError(
                f"{deployment.name}: worst-case cost ${estimate.cost_usd_max:.6f} is over the "
                f"${cap:.6f} cap (max_cost_usd). Lower max_tokens, shorten the input, raise "
                "the cap, or route to a cheaper model.",
                cost_usd=estimate.cost_usd_max,
                limit_usd=cap,
            )

    def _counted(
        self,
        request: ChatRequest,
        *,
        plan: Plan,
        deployment: Deployment,
        estimate: Estimate,
        target: Target,
        wire: WireFormat,
        timeout: float,
    ) -> Generator[Step, Outcome | None, Estimate]:
        """The estimate with the input the vendor's count-tokens endpoint reports. When the
        vendor has none, or the count fails, the estimate stands, with a note saying so."""
        if not isinstance(wire, TokenCounter):
            reason = f"{target.provider} has no count-tokens endpoint"
        else:
            count_request = wire.build_count_request(request, target)
            count_request.extensions["timeout"] = httpx.Timeout(timeout).as_dict()
            outcome = yield Send(
                request=count_request,
                target=target,
                decoder=None,
                timeout_s=timeout,
                max_body_bytes=self._max_body_bytes,
            )
            try:
                if isinstance(outcome, Failed):
                    raise outcome.error
                if not isinstance(outcome, Answered):
                    raise TypeError(f"engine expected an answer, got {outcome!r}")
                if outcome.status >= 300:
                    raise wire.parse_error(
                        outcome.status, outcome.headers, outcome.body, target, now=self._wall()
                    )
                tokens = wire.parse_count(outcome.body, target)
            except GuardedLLMError as exc:
                reason = f"the count-tokens call failed ({type(exc).__name__}: {exc})"
            else:
                exact = with_counted_input(
                    estimate,
                    tokens,
                    prices=prices_of(deployment),
                    context_window=deployment.context_window,
                    source=f"{target.provider}'s count-tokens endpoint",
                )
                plan.remember(exact)
                return exact
        return attrs.evolve(
            estimate, notes=(*estimate.notes, f"exact count asked for, but {reason}: estimated")
        )

    def _settle(
        self, outcome: Outcome | None, wire: WireFormat, target: Target
    ) -> tuple[ChatCompletion | None, GuardedLLMError | None, int | None]:
        """(parsed response, error, status) for one attempt's outcome."""
        if isinstance(outcome, Failed):
            return None, outcome.error, None
        if isinstance(outcome, StreamStarted):
            return None, None, 200
        if not isinstance(outcome, Answered):  # the driver broke the protocol
            raise TypeError(f"engine expected an attempt outcome, got {outcome!r}")
        if outcome.status >= 300:
            error = wire.parse_error(
                outcome.status, outcome.headers, outcome.body, target, now=self._wall()
            )
            return None, error, outcome.status
        try:
            return wire.parse_response(outcome.body, target), None, outcome.status
        except GuardedLLMError as exc:
            return None, exc, outcome.status

    def _finish(
        self,
        *,
        request: ChatRequest,
        plan: Plan,
        estimate: Estimate,
        attempts: list[Attempt],
        started: float,
        target: Target,
        outcome: Outcome | None,
        result: ChatCompletion | None,
    ) -> ChatCompletion | StreamStart:
        deployment = self.registry.deployment(target.deployment)
        guard = GuardInfo(
            requested=plan.requested,
            route=plan.route,
            route_reason=plan.reason,
            deployment=deployment.name,
            attempts=tuple(attempts),
            estimate=estimate,
            cost_usd=None,
            latency_s=self._clock() - started,
        )
        if isinstance(outcome, StreamStarted):
            tracker = StreamTracker(
                engine=self,
                estimate=estimate,
                guard=guard,
                deployment=deployment,
                target=target,
                decoder=outcome.decoder,
                include_usage=request.stream_include_usage,
                clock=self._clock,
            )
            return StreamStart(
                handle=outcome.handle, first_chunks=outcome.first_chunks, tracker=tracker
            )
        assert result is not None
        if result.usage is not None:
            self.observe_usage(deployment.name, estimate, result.usage)
        cost = usage_cost(deployment, result.usage) if result.usage is not None else None
        return attrs.evolve(result, guard=attrs.evolve(guard, cost_usd=cost))

    def observe_usage(self, deployment: str, estimate: Estimate, usage: Usage) -> None:
        """Learn from the vendor's count of a request we estimated."""
        self.calibrator.observe(
            deployment,
            counted=estimate.counted_tokens,
            estimated=estimate.input_tokens,
            actual=usage.prompt_tokens,
        )

    def _backoff(self, retry: int, error: GuardedLLMError) -> float:
        """Full-jitter exponential backoff, floored by the vendor's Retry-After."""
        ceiling = min(defaults.BACKOFF_CAP_S, defaults.BACKOFF_BASE_S * 2.0 ** (retry - 1))
        wait = self._random() * ceiling
        retry_after = error.retry_after if isinstance(error, ProviderError) else None
        return max(wait, retry_after) if retry_after is not None else wait


# --------------------------------------------------------------------------- streams


class StreamTracker:
    """The pure bookkeeping of a stream after its first chunk: what the caller received, when
    it completed, what it cost, and how a break is reported. The drivers feed it bytes."""

    def __init__(
        self,
        *,
        engine: Engine,
        estimate: Estimate,
        guard: GuardInfo,
        deployment: Deployment,
        target: Target,
        decoder: StreamDecoder,
        include_usage: bool,
        clock: Callable[[], float],
    ) -> None:
        self.guard = guard
        self.target = target
        self._engine = engine
        self._estimate = estimate
        self._deployment = deployment
        self._decoder = decoder
        self._include_usage = include_usage
        self._clock = clock
        self._started = clock()
        self._received: list[ChatCompletionChunk] = []
        self.completed = False

    def first(self, chunks: tuple[ChatCompletionChunk, ...]) -> list[ChatCompletionChunk]:
        """The chunks read while the stream was being opened."""
        self._received.extend(chunks)
        return self._visible(chunks)

    def feed(self, data: bytes) -> list[ChatCompletionChunk]:
        """Decode more bytes; a vendor error event becomes ``StreamInterruptedError``."""
        try:
            chunks = self._decoder.feed(data)
        except GuardedLLMError as exc:
            raise self.interrupted(exc) from exc
        self._received.extend(chunks)
        return self._visible(chunks)

    def finish(self) -> list[ChatCompletionChunk]:
        """The body ended: complete only if the vendor's terminal event arrived."""
        try:
            chunks = self._decoder.close()
        except GuardedLLMError as exc:
            raise self.interrupted(exc) from exc
        self._received.extend(chunks)
        usage = self._decoder.usage
        if usage is not None:
            self._engine.observe_usage(self._deployment.name, self._estimate, usage)
        self.guard = attrs.evolve(
            self.guard,
            cost_usd=usage_cost(self._deployment, usage) if usage is not None else None,
            latency_s=self.guard.latency_s + (self._clock() - self._started),
        )
        self.completed = True
        return self._visible(chunks)

    def interrupted(self, cause: BaseException) -> StreamInterruptedError:
        """The error for a stream that broke after chunks reached the caller."""
        return StreamInterruptedError(
            f"{self._deployment.name}: the stream broke after {len(self._received)} chunks "
            f"({cause}). Nothing was retried: part of the answer had reached you. "
            "`.received` / `.partial_content` hold what arrived; retry the call if you need "
            "the whole answer.",
            received=self._received,
            deployment=self._deployment.name,
        )

    def _visible(
        self, chunks: tuple[ChatCompletionChunk, ...] | list[ChatCompletionChunk]
    ) -> list[ChatCompletionChunk]:
        # The usage-only last chunk reaches the caller only if asked for, as with the openai
        # package: code written for it may index choices[0] on every chunk.
        if self._include_usage:
            return list(chunks)
        return [c for c in chunks if c.choices or c.usage is None]


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


def stream_ended_early(target: Target) -> ResponseFormatError:
    """The error for a stream whose body ended before its first chunk."""
    return ResponseFormatError(
        f"{target.deployment}: the stream from {target.provider} ended before its first chunk. "
        "It is retried or falls back while the deadline allows.",
        deployment=target.deployment,
    )


# --------------------------------------------------------------------------- small helpers


def _attempt(
    target: Target,
    number: int,
    *,
    outcome: Literal["ok", "error"],
    status: int | None,
    latency: float,
    error: GuardedLLMError | None = None,
) -> Attempt:
    return Attempt(
        deployment=target.deployment,
        provider=target.provider,
        number=number,
        outcome=outcome,
        status=status,
        latency_s=latency,
        error=str(error) if error is not None else None,
        error_type=type(error).__name__ if error is not None else None,
    )


def _skipped(deployment: Deployment, reason: GuardedLLMError) -> Attempt:
    return Attempt(
        deployment=deployment.name,
        provider=deployment.provider,
        number=0,
        outcome="skipped",
        error=str(reason),
        error_type=type(reason).__name__,
    )


def _deadline_error(deadline_s: float, plan: Plan) -> DeadlineExceededError:
    return DeadlineExceededError(
        f"{plan.requested!r}: the {deadline_s:g} s deadline ran out before an answer. "
        "See .attempts; raise deadline_s or add a faster fallback.",
        deadline_s=deadline_s,
    )


def _wait_too_long(error: GuardedLLMError, wait: float, remaining: float) -> RateLimitedError:
    status = error.status if isinstance(error, ProviderError) else None
    deployment = error.deployment if isinstance(error, ProviderError) else None
    return RateLimitedError(
        f"{deployment}: the provider asked to wait {wait:g} s, longer than the {remaining:.2f} s "
        "left of the deadline, so the call failed at once. Retry later, raise deadline_s, or add "
        "a fallback deployment.",
        status=status,
        retry_after=wait,
        deployment=deployment,
    )
