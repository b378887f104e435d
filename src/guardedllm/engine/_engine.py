"""The sans-IO call planner: one logical call, driven through attempts, never doing I/O.

``Engine.run`` is a generator in the manner of httpx's ``Auth.auth_flow``: it yields steps —
``Send`` (one HTTP attempt) or ``Sleep`` (a backoff or a rate-limit wait) — and receives the
outcome of each, until it returns a ``ChatCompletion`` or a ``StreamStart`` (a stream whose first
chunk has arrived), or raises. ``Client`` and ``AsyncClient`` run the same generator and differ
only in how they send, sleep and read bytes, so every decision lives here once.

For each deployment of the plan, in order, the guards are consulted so that nothing is sent
that a guard would refuse:

1. unavailable mark (a recent 404 model-not-found)  -> skip, without touching the network
2. circuit breaker permit                            -> skip while open; few probes half-open
3. pre-flight: tokens, context window, cost cap      -> skip what cannot fit or afford
4. spend budgets: reserve the worst-case cost        -> skip when a budget would overspend
5. per attempt: retry budget (for retries), rate limiter (wait within the deadline), send
6. per outcome: breaker records it; the limiter learns the vendor's headers and is corrected
   to the tokens used; a 404 marks the deployment unavailable; the reservation is settled to
   the actual cost, or released when nothing was billed.

Invariants:
- One deadline per call covers every attempt, backoff, rate-limit wait and fallback; no step
  is yielded after it, and no wait is slept into it.
- Client errors (400/401/403/413/422) fail the call at once; they would fail anywhere.
- A stream is retried or failed over only before its first chunk reaches the caller.
- Every breaker permit is recorded and every reservation settled or released exactly once,
  even when the driver abandons the call (the generator is closed).
"""

from __future__ import annotations

import random as _random
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from typing import Literal

import attrs
import httpx
from opentelemetry.context import Context

from guardedllm import defaults
from guardedllm.engine._classify import breaker_outcome, classify
from guardedllm.engine._guards import Guards, report_transition
from guardedllm.engine._steps import (
    Answered,
    Failed,
    Outcome,
    Send,
    Sleep,
    Step,
    StreamStart,
    StreamStarted,
)
from guardedllm.engine._stream import StreamEnd, StreamTracker
from guardedllm.errors import (
    AllRoutesFailedError,
    AuthenticationError,
    BudgetExceededError,
    CircuitOpenError,
    ContextWindowExceededError,
    DeadlineExceededError,
    GuardedLLMError,
    InvalidRequestError,
    ModelNotFoundError,
    ProviderError,
    RateLimitedError,
)
from guardedllm.estimate import Calibrator, Estimate, get_encoding, with_counted_input
from guardedllm.estimate._encodings import BUNDLED_ENCODINGS
from guardedllm.guards import BreakerConfig, Permit, Reservation, RetryBudgetConfig, SpendBudget
from guardedllm.policy import Policy
from guardedllm.providers import wire_format_for
from guardedllm.providers.base import Target, TokenCounter, WireFormat
from guardedllm.registry import Deployment, Registry
from guardedllm.routing import Plan, plan_route, prices_of, usage_cost
from guardedllm.state import StateBackend
from guardedllm.telemetry import EVENT_SKIPPED, AttemptSpan, CallSpan, Telemetry, error_type
from guardedllm.types import (
    Attempt,
    ChatCompletion,
    ChatCompletionChunk,
    ChatRequest,
    GuardInfo,
    Usage,
)

__all__ = ["Engine"]

Flow = Generator[Step, Outcome | None, ChatCompletion | StreamStart]

# The refusals that pass over a deployment before anything is sent to it: another deployment
# may fit, afford or express the request, or hold a key that is set.
_REFUSALS = (
    InvalidRequestError,
    AuthenticationError,
    ContextWindowExceededError,
    BudgetExceededError,
)


@attrs.frozen(kw_only=True)
class _Settings:
    deadline_s: float
    max_attempts: int
    timeout_s: float | None  # None: each provider's own, else [defaults]
    max_cost_usd: float | None
    exact_tokens: bool
    budget_key: str | None


class _Call:
    """The state of one logical call while the engine drives it."""

    def __init__(self, *, plan: Plan, settings: _Settings, started: float, span: CallSpan):
        self.plan = plan
        self.settings = settings
        self.started = started
        self.deadline = started + settings.deadline_s
        self.span = span
        self.attempts: list[Attempt] = []
        self.first_refusal: GuardedLLMError | None = None
        self.last_error: GuardedLLMError | None = None
        self.reason: str | None = None  # why the next attempt happens (None for the first)

    def skip(self, deployment: Deployment, refusal: GuardedLLMError) -> None:
        self.attempts.append(
            Attempt(
                deployment=deployment.name,
                provider=deployment.provider,
                number=0,
                outcome="skipped",
                error=str(refusal),
                error_type=type(refusal).__name__,
                retry_reason=self.reason,
            )
        )
        self.first_refusal = self.first_refusal or refusal
        self.reason = error_type(refusal)
        self.span.event(
            EVENT_SKIPPED,
            {"guardedllm.deployment": deployment.name, "error.type": self.reason},
        )

    def record(
        self,
        target: Target,
        number: int,
        *,
        status: int | None,
        latency: float,
        error: GuardedLLMError | None = None,
    ) -> None:
        self.attempts.append(
            Attempt(
                deployment=target.deployment,
                provider=target.provider,
                number=number,
                outcome="ok" if error is None else "error",
                status=status,
                latency_s=latency,
                error=str(error) if error is not None else None,
                error_type=type(error).__name__ if error is not None else None,
                retry_reason=self.reason,
            )
        )
        if error is not None:
            self.last_error = error
            self.reason = error_type(error, status)

    def final_error(self) -> GuardedLLMError:
        """The error for a plan that ran out: the first refusal if nothing was sent."""
        if self.last_error is None and self.first_refusal is not None:
            return self.first_refusal
        tried = ", ".join(d.name for d in self.plan.deployments)
        last = self.last_error
        detail = f"{type(last).__name__}: {last}" if last is not None else "nothing was sent"
        error = AllRoutesFailedError(
            f"{self.plan.requested!r}: every deployment failed ({tried}). Last error: {detail} "
            "See .attempts for each try; add a fallback on another provider to the route, or "
            "check the providers' status."
        )
        error.__cause__ = last
        return error

    def deadline_error(self) -> DeadlineExceededError:
        error = DeadlineExceededError(
            f"{self.plan.requested!r}: the {self.settings.deadline_s:g} s deadline ran out "
            "before an answer. See .attempts; raise deadline_s or add a faster fallback.",
            deadline_s=self.settings.deadline_s,
        )
        error.__cause__ = self.last_error
        return error


@attrs.define
class _Try:
    """One deployment's turn within a call: what was prepared for it, and the guard state it
    holds (a breaker permit, a spend reservation) until ``close`` lets go of it."""

    deployment: Deployment
    permit: Permit | None
    target: Target = attrs.field(default=None)
    wire: WireFormat = attrs.field(default=None)
    estimate: Estimate = attrs.field(default=None)
    http_request: httpx.Request = attrs.field(default=None)
    timeout_cap: float = 0.0
    tokens: int = 0
    reservation: Reservation | None = None
    handed_over: bool = False

    def record_permit(
        self,
        guards: Guards,
        outcome: Literal["success", "failure", "ignored"],
        latency: float,
        now: float,
        span: CallSpan,
    ) -> None:
        if self.permit is not None:
            transition = guards.breaker.record(
                self.deployment.name, self.permit, outcome, latency, now
            )
            self.permit = None
            report_transition(transition, span)

    def release_permit(self, guards: Guards, now: float) -> None:
        if self.permit is not None:
            guards.breaker.record(self.deployment.name, self.permit, "ignored", 0.0, now)
            self.permit = None

    def close(self, guards: Guards, *, now: float, wall_now: float) -> None:
        """Let go of what is still held: a permit abandoned between acquire and outcome (not
        the deployment's fault), a reservation nothing was billed against."""
        self.release_permit(guards, now)
        if self.reservation is not None and not self.handed_over:
            guards.ledger.release(self.reservation, wall_now=wall_now)


class Engine:
    """Plans and decides every call for one client. Holds no I/O: the registry, the client-wide
    policy, the guards over their state backend, telemetry, and the injected clock, wall clock
    and random source."""

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
        state: StateBackend | None = None,
        breaker: BreakerConfig | None = None,
        retry_budget: RetryBudgetConfig | None = None,
        budgets: Sequence[SpendBudget] = (),
        telemetry: Telemetry | None = None,
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
        self.telemetry = telemetry if telemetry is not None else Telemetry()
        self.guards = Guards(
            deployments=list(registry.models),
            state=state,
            breaker=breaker,
            retry_budget=retry_budget,
            budgets=budgets,
            random=random,
            clock=clock,
            wall_clock=wall_clock,
            telemetry=self.telemetry,
        )
        # Load the bundled encodings now (a second or so, once per process), not inside the
        # first call's deadline.
        for tokenizer in {d.tokenizer for d in registry.models.values()}:
            if tokenizer in BUNDLED_ENCODINGS:
                get_encoding(tokenizer)

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
                timeout=self._timeout(deployment, self._settings(effective, plan)),
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

    def observe_usage(self, deployment: str, estimate: Estimate, usage: Usage) -> None:
        """Learn from the vendor's count of a request we estimated."""
        self.calibrator.observe(
            deployment,
            counted=estimate.counted_tokens,
            estimated=estimate.input_tokens,
            actual=usage.prompt_tokens,
        )

    # ---------------------------------------------------------------- the call

    def run(
        self, request: ChatRequest, policy: Policy | None = None, *, context: Context | None = None
    ) -> Flow:
        """Drive one logical call. See the module docstring for the protocol. ``context`` is
        the OpenTelemetry context the driver captured when the call began."""
        started = self._clock()
        span = self.telemetry.start_call(
            requested=request.model, request=request, parent_context=context, now=started
        )
        call: _Call | None = None
        try:
            effective = self._policy(policy)
            plan = self._plan(request, effective)
            call = _Call(
                plan=plan, settings=self._settings(effective, plan), started=started, span=span
            )
            for deployment in plan.deployments:
                result = yield from self._on_deployment(call, request, deployment)
                if result is not None:
                    return result
            raise call.final_error()
        except GuardedLLMError as exc:
            if not exc.attempts and call is not None:
                exc.attempts = tuple(call.attempts)
            span.end_error(exc)
            raise
        except BaseException:
            span.abandon()  # the driver gave up on the call (cancelled, or closed the flow)
            raise

    def _on_deployment(
        self, call: _Call, request: ChatRequest, deployment: Deployment
    ) -> Generator[Step, Outcome | None, ChatCompletion | StreamStart | None]:
        """Try one deployment: the result, or None to move on (the reason is on ``call``)."""
        permit = self._admit(call, deployment)
        if permit is None:
            return None
        attempt = _Try(deployment=deployment, permit=permit)
        try:
            prepared = yield from self._prepare(call, request, attempt)
            if not prepared:
                return None
            self.guards.retry_budget.deposit(deployment.name, self._clock())
            for number in range(1, call.settings.max_attempts + 1):
                if number > 1 and not self._readmit(call, attempt):
                    return None
                refused = yield from self._rate_limit(call, deployment, attempt.tokens)
                if refused is not None:
                    attempt.release_permit(self.guards, self._clock())
                    call.skip(deployment, refused)
                    return None
                remaining = call.deadline - self._clock()
                if remaining <= 0:
                    raise call.deadline_error()
                outcome, latency, attempt_span = yield from self._send(
                    call, request, attempt, number, min(attempt.timeout_cap, remaining)
                )
                result, error, status = self._settle(outcome, attempt.wire, attempt.target)
                if error is None:
                    return self._succeeded(
                        call,
                        request,
                        attempt,
                        number=number,
                        outcome=outcome,
                        result=result,
                        status=status,
                        latency=latency,
                        attempt_span=attempt_span,
                    )
                attempt_span.end_error(error, status=status, now=self._clock())
                wait = self._failed(
                    call, attempt, number=number, error=error, status=status, latency=latency
                )
                if wait is None:
                    return None
                yield Sleep(seconds=wait)
            return None
        finally:
            attempt.close(self.guards, now=self._clock(), wall_now=self._wall_clock())

    def _admit(self, call: _Call, deployment: Deployment) -> Permit | None:
        """The breaker's permit for a first attempt, or None (skipped: marked unavailable or
        circuit open)."""
        now = self._clock()
        mark = self.guards.marks.unavailable(deployment.name, now)
        if mark is not None:
            call.skip(deployment, _unavailable(deployment, mark.until - now, mark.reason))
            return None
        permit = self.guards.breaker.acquire(deployment.name, now)
        report_transition(permit.transition, call.span)
        if not permit.allowed:
            call.skip(deployment, _circuit_open(deployment, permit))
            return None
        return permit

    def _readmit(self, call: _Call, attempt: _Try) -> bool:
        """Whether a retry may go: the retry budget pays for it and the breaker admits it."""
        now = self._clock()
        name = attempt.deployment.name
        if not self.guards.retry_budget.try_withdraw(name, now):
            call.reason = "retry_budget_exhausted"
            return False
        permit = self.guards.breaker.acquire(name, now)
        report_transition(permit.transition, call.span)
        if not permit.allowed:
            call.reason = "circuit_open"
            return False
        attempt.permit = permit
        return True

    def _prepare(
        self, call: _Call, request: ChatRequest, attempt: _Try
    ) -> Generator[Step, Outcome | None, bool]:
        """Everything decided before the first send: target, estimate (counted by the vendor
        if asked), pre-flight checks, the HTTP request, the spend reservation. False when the
        deployment is refused (recorded on ``call``)."""
        deployment = attempt.deployment
        try:
            attempt.target = self.target(deployment)
            attempt.wire = self.wire(attempt.target.kind)
            estimate = call.plan.estimate(deployment)
            attempt.timeout_cap = self._timeout(deployment, call.settings)
            if call.settings.exact_tokens and not estimate.exact:
                estimate = yield from self._counted(
                    request,
                    plan=call.plan,
                    deployment=deployment,
                    estimate=estimate,
                    target=attempt.target,
                    wire=attempt.wire,
                    timeout=min(attempt.timeout_cap, max(call.deadline - self._clock(), 1e-3)),
                )
            attempt.estimate = estimate
            attempt.tokens = estimate.input_tokens + estimate.max_output_tokens
            call.span.set_estimate(estimate)
            self._check_preflight(deployment, estimate, call.settings)
            attempt.http_request = attempt.wire.build_request(request, attempt.target)
            attempt.reservation = self._reserve(call, estimate)
        except _REFUSALS as refusal:
            call.skip(deployment, refusal)
            return False
        if request.extra_headers:
            attempt.http_request.headers.update(request.extra_headers)
        return True

    def _send(
        self, call: _Call, request: ChatRequest, attempt: _Try, number: int, timeout: float
    ) -> Generator[Step, Outcome | None, tuple[Outcome | None, float, AttemptSpan]]:
        """One HTTP attempt: (its outcome, its latency, its span)."""
        target = attempt.target
        attempt.http_request.extensions["timeout"] = httpx.Timeout(timeout).as_dict()
        attempt_span = call.span.start_attempt(
            deployment=target.deployment,
            provider_kind=target.kind,
            provider_name=target.provider,
            vendor_model=target.model,
            server_url=target.base_url,
            number=number,
            reason=call.reason,
        )
        sent_at = self._clock()
        outcome = yield Send(
            request=attempt.http_request,
            target=target,
            decoder=attempt.wire.stream_decoder(target) if request.stream else None,
            timeout_s=timeout,
            max_body_bytes=self._max_body_bytes,
        )
        now = self._clock()
        if isinstance(outcome, Answered):
            deployment = attempt.deployment
            self.guards.limiter.learn(
                deployment.name,
                outcome.headers,
                rpm=deployment.rpm,
                tpm=deployment.tpm,
                now=now,
                wall_now=self._wall_clock(),
            )
        return outcome, now - sent_at, attempt_span

    def _succeeded(
        self,
        call: _Call,
        request: ChatRequest,
        attempt: _Try,
        *,
        number: int,
        outcome: Outcome | None,
        result: ChatCompletion | None,
        status: int | None,
        latency: float,
        attempt_span: AttemptSpan,
    ) -> ChatCompletion | StreamStart:
        now = self._clock()
        attempt.record_permit(self.guards, "success", latency, now, call.span)
        call.record(attempt.target, number, status=status, latency=latency)
        guard = self._guard_info(call, attempt.deployment, attempt.estimate)
        attempt.handed_over = True  # the stream or this return now settles the reservation
        if isinstance(outcome, StreamStarted):
            attempt_span.first_chunk(now=now)
            return self._stream_start(
                call, request, attempt, outcome=outcome, guard=guard, attempt_span=attempt_span
            )
        assert result is not None
        cost = self._account(attempt, result.usage)
        attempt_span.end_ok(result, status=status or 200, cost_usd=cost, now=now)
        guard = attrs.evolve(guard, cost_usd=cost)
        call.span.end_ok(guard, now=now)
        return attrs.evolve(result, guard=guard)

    def _failed(
        self,
        call: _Call,
        attempt: _Try,
        *,
        number: int,
        error: GuardedLLMError,
        status: int | None,
        latency: float,
    ) -> float | None:
        """Record a failed attempt; the backoff before retrying here, or None to move on.
        Raises when the call must end now."""
        now = self._clock()
        name = attempt.deployment.name
        attempt.record_permit(self.guards, breaker_outcome(error), latency, now, call.span)
        self.guards.limiter.correct(
            name, tpm=attempt.deployment.tpm, reserved_tokens=attempt.tokens, actual_tokens=0,
            now=now,
        )  # fmt: skip
        call.record(attempt.target, number, status=status, latency=latency, error=error)
        if isinstance(error, ModelNotFoundError):
            self.guards.marks.mark(
                name, until=now + defaults.UNAVAILABLE_S, reason=str(error), now=now
            )
        verdict = classify(error)
        if verdict == "fail":
            raise error
        remaining = call.deadline - now
        if remaining <= 0:  # nothing else can be tried in time
            raise call.deadline_error()
        if verdict == "fallback" or number == call.settings.max_attempts:
            return None
        wait = self._backoff(number, error)
        if wait < remaining:
            return wait
        retry_after = error.retry_after if isinstance(error, ProviderError) else None
        if retry_after is not None and retry_after >= remaining:
            if attempt.deployment is call.plan.deployments[-1]:
                raise _wait_too_long(error, retry_after, remaining)
            call.reason = "retry_after_exceeds_deadline"
        return None  # no time to retry here; the next deployment may still answer

    # ---------------------------------------------------------------- pieces of a call

    def _policy(self, policy: Policy | None) -> Policy:
        base = self.policy or Policy()
        return policy.over(base) if policy is not None else base

    def _plan(self, request: ChatRequest, policy: Policy) -> Plan:
        return plan_route(self.registry, request, policy, calibrator=self.calibrator)

    def _settings(self, policy: Policy, plan: Plan) -> _Settings:
        config = self.registry.defaults
        return _Settings(
            deadline_s=policy.deadline_s or plan.deadline_s or config.deadline_s,
            max_attempts=policy.max_attempts or plan.max_attempts or config.max_attempts,
            timeout_s=policy.timeout_s,
            max_cost_usd=policy.max_cost_usd or plan.max_cost_usd,
            exact_tokens=bool(policy.exact_tokens),
            budget_key=policy.budget_key,
        )

    def _timeout(self, deployment: Deployment, settings: _Settings) -> float:
        """One attempt's timeout: the policy's, else the provider's, else ``[defaults]``."""
        provider = self.registry.provider_of(deployment)
        return settings.timeout_s or provider.timeout_s or self.registry.defaults.timeout_s

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

    def _reserve(self, call: _Call, estimate: Estimate) -> Reservation | None:
        """Hold the worst-case cost on every spend budget that applies (None: no budgets)."""
        if not self.guards.ledger.budgets:
            return None
        return self.guards.ledger.reserve(
            route=call.plan.requested,
            key=call.settings.budget_key,
            amount_usd=estimate.cost_usd_max,
            wall_now=self._wall_clock(),
        )

    def _rate_limit(
        self, call: _Call, deployment: Deployment, tokens: int
    ) -> Generator[Step, Outcome | None, RateLimitedError | None]:
        """Take a request and ``tokens`` from the deployment's rate limits, sleeping within the
        deadline for them; the error when the wait would outlast it."""
        while True:
            now = self._clock()
            decision = self.guards.limiter.acquire(
                deployment.name, rpm=deployment.rpm, tpm=deployment.tpm, tokens=tokens, now=now
            )
            if decision.granted:
                return None
            remaining = call.deadline - now
            if decision.wait_s >= remaining:
                return decision.error(deployment=deployment.name, deadline_left_s=remaining)
            yield Sleep(seconds=decision.wait_s)

    def _account(self, attempt: _Try, usage: Usage | None) -> float | None:
        """Settle an answered attempt: calibration, rate-limit correction, spend. Returns its
        cost (None when the vendor reported no usage: then the worst case stays spent)."""
        deployment = attempt.deployment
        now = self._clock()
        cost = usage_cost(deployment, usage) if usage is not None else None
        if usage is not None:
            self.observe_usage(deployment.name, attempt.estimate, usage)
            self.guards.limiter.correct(
                deployment.name,
                tpm=deployment.tpm,
                reserved_tokens=attempt.tokens,
                actual_tokens=usage.prompt_tokens + usage.completion_tokens,
                now=now,
            )
        if attempt.reservation is not None:
            settled = cost if cost is not None else attempt.reservation.amount_usd
            self.guards.ledger.settle(attempt.reservation, settled, wall_now=self._wall_clock())
        return cost

    def _guard_info(self, call: _Call, deployment: Deployment, estimate: Estimate) -> GuardInfo:
        return GuardInfo(
            requested=call.plan.requested,
            route=call.plan.route,
            route_reason=call.plan.reason,
            deployment=deployment.name,
            attempts=tuple(call.attempts),
            estimate=estimate,
            cost_usd=None,
            latency_s=self._clock() - call.started,
        )

    def _stream_start(
        self,
        call: _Call,
        request: ChatRequest,
        attempt: _Try,
        *,
        outcome: StreamStarted,
        guard: GuardInfo,
        attempt_span: AttemptSpan,
    ) -> StreamStart:
        def settle(
            how: StreamEnd,
            usage: Usage | None,
            received: Sequence[ChatCompletionChunk],
            error: BaseException | None,
        ) -> float | None:
            now = self._clock()
            cost = self._account(attempt, usage)
            if how == "completed":
                attempt_span.end_stream(received, usage=usage, cost_usd=cost, now=now)
                call.span.end_ok(attrs.evolve(tracker.guard, cost_usd=cost), now=now)
            elif how == "interrupted" and error is not None:
                attempt_span.end_error(error, status=200, now=now)
                call.span.end_error(error, now=now)
            else:
                attempt_span.abandon(now=now)
                call.span.abandon(now=now)
            return cost

        tracker = StreamTracker(
            guard=guard,
            target=attempt.target,
            decoder=outcome.decoder,
            include_usage=request.stream_include_usage,
            clock=self._clock,
            settle=settle,
        )
        return StreamStart(
            handle=outcome.handle, first_chunks=outcome.first_chunks, tracker=tracker
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
                outcome.status, outcome.headers, outcome.body, target, now=self._wall_clock()
            )
            return None, error, outcome.status
        try:
            return wire.parse_response(outcome.body, target), None, outcome.status
        except GuardedLLMError as exc:
            return None, exc, outcome.status

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
                        outcome.status,
                        outcome.headers,
                        outcome.body,
                        target,
                        now=self._wall_clock(),
                    )
                tokens = wire.parse_count(outcome.body, target)
            except GuardedLLMError as exc:
                reason = f"the count-tokens call failed ({type(exc).__name__})"
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

    def _backoff(self, retry: int, error: GuardedLLMError) -> float:
        """Full-jitter exponential backoff, floored by the vendor's Retry-After."""
        ceiling = min(defaults.BACKOFF_CAP_S, defaults.BACKOFF_BASE_S * 2.0 ** (retry - 1))
        wait = self._random() * ceiling
        retry_after = error.retry_after if isinstance(error, ProviderError) else None
        return max(wait, retry_after) if retry_after is not None else wait


# --------------------------------------------------------------------------- refusals


def _unavailable(deployment: Deployment, left_s: float, reason: str) -> ModelNotFoundError:
    return ModelNotFoundError(
        f"{deployment.name}: marked unavailable for {left_s:.0f} s more after the provider "
        f"said the model does not exist ({reason.splitlines()[0][:200]}); passed over without "
        "sending. Fix the model id, or run `guardedllm smoke` for this environment.",
        deployment=deployment.name,
    )


def _circuit_open(deployment: Deployment, permit: Permit) -> CircuitOpenError:
    when = f" in {permit.retry_in_s:.1f} s" if permit.retry_in_s is not None else " soon"
    return CircuitOpenError(
        f"{deployment.name}: the circuit breaker is {permit.state.replace('_', '-')} after "
        f"repeated failures; it lets a probe through{when}. Nothing was sent. Add a fallback "
        "deployment on another provider to keep answering meanwhile.",
        deployment=deployment.name,
        retry_in_s=permit.retry_in_s,
    )


def _wait_too_long(error: GuardedLLMError, wait: float, remaining: float) -> RateLimitedError:
    status = error.status if isinstance(error, ProviderError) else None
    deployment = error.deployment if isinstance(error, ProviderError) else None
    limited = RateLimitedError(
        f"{deployment}: the provider asked to wait {wait:g} s, longer than the {remaining:.2f} s "
        "left of the deadline, so the call failed at once. Retry later, raise deadline_s, or add "
        "a fallback deployment.",
        status=status,
        retry_after=wait,
        deployment=deployment,
    )
    limited.__cause__ = error
    return limited
