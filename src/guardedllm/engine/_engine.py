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
   the actual cost (the worst case when the vendor reported no usage, or none it could have
   billed), or released when nothing was billed.

Invariants:
- One deadline per call covers every attempt, backoff, rate-limit wait and fallback; no step
  is yielded after it, and no wait is slept into it.
- Client errors (400/401/403/413/422) fail the call at once, as they would fail anywhere,
  unless the policy lets them fall back.
- A stream is retried or failed over only before its first chunk reaches the caller.
- Every breaker permit is recorded, and every rate-limit grant and spend reservation settled
  or given back exactly once, even when the driver abandons the call (the generator is
  closed): ``Turn.close`` lets go of whatever an abandoned attempt still holds.
"""

from __future__ import annotations

import random as _random
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from typing import Literal

import attrs
from opentelemetry.context import Context

from guardedllm import defaults
from guardedllm.engine._call import Call, Settings, Turn
from guardedllm.engine._counting import counted
from guardedllm.engine._failures import failed
from guardedllm.engine._guards import Guards, report_transition
from guardedllm.engine._hedge import LatencyWindow, hedge_partner, race
from guardedllm.engine._outcomes import account, learn, settle
from guardedllm.engine._refusals import (
    check_preflight,
    circuit_open,
    rate_limited,
    reserve,
    unavailable,
)
from guardedllm.engine._routing import (
    ShadowBook,
    ShadowJob,
    escalation_after,
    features_for,
    hand_over_shadow,
    sample_shadow_job,
)
from guardedllm.engine._steps import (
    Outcome,
    Send,
    Sleep,
    Step,
    StreamStart,
    StreamStarted,
    succeeded,
)
from guardedllm.engine._stream import BoundedDecoder
from guardedllm.engine._streaming import start_stream
from guardedllm.engine._targets import target_for
from guardedllm.errors import (
    AuthenticationError,
    BudgetExceededError,
    ContextWindowExceededError,
    GuardedLLMError,
    InvalidRequestError,
)
from guardedllm.estimate import Calibrator, Estimate, get_encoding
from guardedllm.estimate._encodings import BUNDLED_ENCODINGS
from guardedllm.guards import BreakerConfig, Permit, RetryBudgetConfig, SpendBudget
from guardedllm.policy import Policy
from guardedllm.providers import wire_format_for
from guardedllm.providers.base import Target, WireFormat
from guardedllm.registry import Deployment, Registry
from guardedllm.routing import Plan, RouteFeatures, plan_route
from guardedllm.state import StateBackend
from guardedllm.telemetry import AttemptSpan, Telemetry
from guardedllm.types import (
    ChatCompletion,
    ChatRequest,
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


_NO_POLICY = Policy()


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
        self._clock = self.clock = clock
        self._wall_clock = self.wall_clock = wall_clock
        self.latencies = LatencyWindow()
        self.shadows = ShadowBook()
        # Set by the driver: runs a shadow copy's flow in the background. None: no copies.
        self.spawn_shadow: Callable[[ShadowJob], None] | None = None
        self._random = self.random = random
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
        plan = self._plan(request, effective, features_for(request, effective), random=None)
        deployment = plan.deployments[0]
        estimate = plan.estimate(deployment)
        if effective.exact_tokens and not estimate.exact:
            target = self.target(deployment)
            estimate = yield from counted(
                request,
                plan=plan,
                deployment=deployment,
                estimate=estimate,
                target=target,
                wire=self.wire(target.kind),
                timeout=Settings.of(effective, plan, self.registry.defaults).attempt_timeout(
                    self.registry.provider_of(deployment).timeout_s, self.registry.defaults
                ),
                max_body_bytes=self._max_body_bytes,
                wall_clock=self._wall_clock,
            )
        return estimate

    def target(self, deployment: Deployment) -> Target:
        """Where an attempt on ``deployment`` goes, with the API key read now."""
        return target_for(self.registry, deployment, self._environ)

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
        self,
        request: ChatRequest,
        policy: Policy | None = None,
        *,
        context: Context | None = None,
        shadow_of: str | None = None,
    ) -> Flow:
        """Drive one logical call. See the module docstring for the protocol. ``context`` is
        the OpenTelemetry context the driver captured when the call began; ``shadow_of`` marks
        a shadow copy of a call to that route (see ``_routing``)."""
        started = self._clock()
        span = self.telemetry.start_call(
            requested=request.model, request=request, parent_context=context, now=started
        )
        if shadow_of is not None:
            span.mark_shadow(shadow_of)
        call: Call | None = None
        job: ShadowJob | None = None
        try:
            # A shadow copy's policy is complete as given: the client's would add fallbacks.
            effective = policy if shadow_of is not None and policy else self._policy(policy)
            features = features_for(request, effective)
            plan = self._plan(request, effective, features)
            call = Call(
                plan=plan,
                settings=Settings.of(effective, plan, self.registry.defaults),
                started=started,
                span=span,
            )
            job = sample_shadow_job(
                self, call, request, effective, features=features, context=context
            )
            result = yield from self._route(call, request, effective.validator)
            if job is not None:
                hand_over_shadow(self, call, job, result)
                if isinstance(result, StreamStart):  # its guard info predates the copy
                    tracker = result.tracker
                    tracker.guard = attrs.evolve(tracker.guard, decisions=tuple(call.decisions))
            if isinstance(result, ChatCompletion):
                result = self._finish(call, result)
            return result
        except GuardedLLMError as exc:
            if call is not None:
                if not exc.attempts:
                    exc.attempts = tuple(call.attempts)
                if job is not None:
                    hand_over_shadow(self, call, job, None)
            span.end_error(exc, now=self._clock())
            raise
        except Exception as exc:  # a bug, such as in the caller's validator: an error still
            span.end_error(exc, now=self._clock())
            raise
        except BaseException:
            span.abandon(
                now=self._clock()
            )  # the driver gave up on the call (cancelled, or closed the flow)
            raise

    def _route(
        self,
        call: Call,
        request: ChatRequest,
        validator: Callable[[ChatCompletion], bool] | None,
    ) -> Flow:
        """The plan's deployments in turn, then the escalation target if the outcome calls
        for it (a failure, an answer cut at its limit, one the validator rejects)."""
        try:
            result = yield from self._through(call, request, call.plan.deployments)
        except GuardedLLMError as error:
            larger = escalation_after(call, now=self._clock(), error=error)
            if not larger:
                raise
            return (yield from self._through(call, request, larger))
        if isinstance(result, ChatCompletion):
            larger = escalation_after(
                call, now=self._clock(), completion=result, validator=validator
            )
            if larger:
                return (yield from self._through(call, request, larger))
        return result

    def _through(
        self, call: Call, request: ChatRequest, deployments: tuple[Deployment, ...]
    ) -> Flow:
        call.trying = deployments
        for deployment in deployments:
            result = yield from self._on_deployment(call, request, deployment)
            if result is not None:
                return result
        raise call.final_error()

    def _finish(self, call: Call, result: ChatCompletion) -> ChatCompletion:
        """The answer with the whole call's guard info, the call span ended."""
        guard = call.guard_info(cost_usd=call.billed, now=self._clock())
        call.span.end_ok(guard, now=call.started + guard.latency_s)
        return attrs.evolve(result, guard=guard)

    def _on_deployment(
        self, call: Call, request: ChatRequest, deployment: Deployment
    ) -> Generator[Step, Outcome | None, ChatCompletion | StreamStart | None]:
        """Try one deployment: the result, or None to move on (the reason is on ``call``)."""
        permit = self._admit(call, deployment)
        if permit is None:
            return None
        attempt = Turn(deployment=deployment, permit=permit)
        backup: Turn | None = None
        try:
            prepared = yield from self.prepare(call, request, attempt)
            if not prepared:
                return None
            self.guards.retry_budget.deposit(deployment.name, self._clock())
            for number in range(1, call.settings.max_attempts + 1):
                if number > 1 and not self._readmit(call, attempt):
                    return None
                refused = yield from rate_limited(self, call, deployment, attempt.tokens)
                if refused is not None:
                    attempt.release_permit(self.guards, self._clock())
                    call.skip(deployment, refused)
                    return None
                attempt.grant = "taken"
                remaining = call.deadline - self._clock()
                if remaining <= 0:  # the grant goes back: nothing is sent
                    attempt.release_grant(self.guards, self._clock())
                    raise call.deadline_error()
                if number == 1:
                    backup = yield from hedge_partner(self, call, request, deployment)
                    remaining = call.deadline - self._clock()
                timeout = min(attempt.timeout_cap, remaining)
                if backup is not None and timeout <= backup.hedge_delay_s:
                    # The hedge could not answer before the deadline: it does not go.
                    hedge_turn, backup = backup, None
                    now = self._clock()
                    self.guards.retry_budget.refund(deployment.name, now)
                    hedge_turn.release_grant(self.guards, now)
                    hedge_turn.close(self.guards, now=now, wall_now=self._wall_clock())
                if backup is not None and number == 1:
                    winner, outcome, latency, attempt_span = yield from race(
                        self, call, request, attempt, backup=backup, timeout=timeout
                    )
                else:
                    winner = attempt
                    outcome, latency, attempt_span = yield from self._send(
                        call, request, attempt, number, timeout
                    )
                result, error, status = settle(self, outcome, winner.wire, winner.target)
                if error is None:
                    return self._succeeded(
                        call,
                        request,
                        winner,
                        number=number,
                        outcome=outcome,
                        result=result,
                        status=status,
                        latency=latency,
                        attempt_span=attempt_span,
                    )
                attempt_span.end_error(error, status=status, now=self._clock())
                wait = failed(
                    self, call, attempt, number=number, error=error, status=status, latency=latency
                )
                if wait is None:
                    return None
                yield Sleep(seconds=wait)
            return None
        finally:
            for turn in (attempt, backup):
                if turn is not None:
                    turn.close(self.guards, now=self._clock(), wall_now=self._wall_clock())

    def _admit(self, call: Call, deployment: Deployment) -> Permit | None:
        """The breaker's permit for a first attempt, or None (skipped: marked unavailable or
        circuit open)."""
        now = self._clock()
        mark = self.guards.marks.unavailable(deployment.name, now)
        if mark is not None:
            call.skip(deployment, unavailable(deployment, mark.until - now, mark.reason))
            return None
        permit = self.guards.breaker.acquire(deployment.name, now)
        report_transition(permit.transition, call.span)
        if not permit.allowed:
            call.skip(deployment, circuit_open(deployment, permit))
            return None
        return permit

    def _readmit(self, call: Call, attempt: Turn) -> bool:
        """Whether a retry may go: the breaker admits it and the retry budget pays for it (in
        that order, so that a retry the breaker refuses costs the budget nothing)."""
        now = self._clock()
        name = attempt.deployment.name
        permit = self.guards.breaker.acquire(name, now)
        report_transition(permit.transition, call.span)
        if not permit.allowed:
            call.reason = "circuit_open"
            return False
        if not self.guards.retry_budget.try_withdraw(name, now):
            self.guards.breaker.record(name, permit, "ignored", 0.0, now)
            call.reason = "retry_budget_exhausted"
            return False
        attempt.permit = permit
        return True

    def prepare(
        self,
        call: Call,
        request: ChatRequest,
        attempt: Turn,
        *,
        quiet: bool = False,
        count: bool = True,
    ) -> Generator[Step, Outcome | None, bool]:
        """Everything decided before the first send: target, estimate (counted by the vendor
        if asked), pre-flight checks, the HTTP request, the spend reservation. False when the
        deployment is refused (recorded on ``call``)."""
        deployment = attempt.deployment
        try:
            attempt.target = self.target(deployment)
            attempt.wire = self.wire(attempt.target.kind)
            estimate = call.plan.estimate(deployment)
            attempt.timeout_cap = call.settings.attempt_timeout(
                self.registry.provider_of(deployment).timeout_s, self.registry.defaults
            )
            if count and call.settings.exact_tokens and not estimate.exact:
                estimate = yield from counted(
                    request,
                    plan=call.plan,
                    deployment=deployment,
                    estimate=estimate,
                    target=attempt.target,
                    wire=attempt.wire,
                    timeout=min(attempt.timeout_cap, max(call.deadline - self._clock(), 1e-3)),
                    max_body_bytes=self._max_body_bytes,
                    wall_clock=self._wall_clock,
                )
            attempt.estimate = estimate
            attempt.tokens = estimate.input_tokens + estimate.max_output_tokens
            call.span.set_estimate(estimate)
            check_preflight(deployment, estimate, call.settings.max_cost_usd)
            attempt.http_request = attempt.wire.build_request(request, attempt.target)
            attempt.reservation = reserve(self, call, estimate)
        except _REFUSALS as refusal:
            if not quiet:  # a hedge that cannot go is no step of the plan
                call.skip(deployment, refusal)
            return False
        if request.extra_headers:
            attempt.http_request.headers.update(request.extra_headers)
        return True

    def _send(
        self, call: Call, request: ChatRequest, attempt: Turn, number: int, timeout: float
    ) -> Generator[Step, Outcome | None, tuple[Outcome | None, float, AttemptSpan]]:
        """One HTTP attempt: (its outcome, its latency, its span)."""
        send = self.make_send(call, request, attempt, timeout)
        attempt_span = self.start_span(call, attempt, number, reason=call.reason)
        sent_at = self._clock()
        attempt.sending()
        outcome = yield send
        if not succeeded(outcome):  # an answer's headers are learned after its usage is settled
            learn(self, attempt, outcome)
        return outcome, self._clock() - sent_at, attempt_span

    def make_send(self, call: Call, request: ChatRequest, attempt: Turn, timeout: float) -> Send:
        """The step for one attempt. ``timeout`` bounds each read; the driver also caps the
        whole attempt, up to a stream's first chunk, by it or by the first-chunk timeout,
        whichever is shorter."""
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
                max_body_bytes=self._max_body_bytes,
            )
        return Send(
            request=attempt.http_request,
            target=target,
            decoder=decoder,
            timeout_s=cap,
            max_body_bytes=self._max_body_bytes,
        )

    def start_span(
        self,
        call: Call,
        attempt: Turn,
        number: int,
        *,
        reason: str | None,
        now: float | None = None,
    ) -> AttemptSpan:
        target = attempt.target
        return call.span.start_attempt(
            deployment=target.deployment,
            provider_kind=target.kind,
            provider_name=target.provider,
            vendor_model=target.model,
            server_url=target.base_url,
            number=number,
            reason=reason,
            now=now if now is not None else self._clock(),
        )

    def _succeeded(
        self,
        call: Call,
        request: ChatRequest,
        attempt: Turn,
        *,
        number: int,
        outcome: Outcome | None,
        result: ChatCompletion | None,
        status: int | None,
        latency: float,
        attempt_span: AttemptSpan,
    ) -> ChatCompletion | StreamStart:
        now = self._clock()
        self.latencies.record(attempt.deployment.name, latency)
        attempt.record_permit(self.guards, "success", latency, now, call.span)
        call.record(attempt.target, number, status=status, latency=latency)
        call.answered = attempt
        if isinstance(outcome, StreamStarted):
            attempt_span.first_chunk(now=now)
            stream = start_stream(
                self,
                call,
                request,
                attempt,
                outcome=outcome,
                guard=call.guard_info(cost_usd=None, now=now),
                attempt_span=attempt_span,
            )
            # From here the stream's tracker settles the reservation, however the stream ends;
            # until here, ``Turn.close`` would release it.
            attempt.handed_over = True
            return stream
        assert result is not None
        # Settles the reservation even if its bookkeeping fails, so nothing after this line
        # can leave it held.
        cost = account(self, attempt, result.usage)
        # The vendor's count of what is left includes this call; learning it after the usage
        # correction keeps the correction from handing back tokens the vendor already counted.
        learn(self, attempt, outcome)
        attempt_span.end_ok(result, status=status or 200, cost_usd=cost, now=now)
        call.bill(cost)
        return result  # its guard info is added once the call is over (``_finish``)

    # ---------------------------------------------------------------- pieces of a call

    def _policy(self, policy: Policy | None) -> Policy:
        base = self.policy or _NO_POLICY
        return policy.over(base) if policy is not None else base

    def _plan(
        self,
        request: ChatRequest,
        policy: Policy,
        features: RouteFeatures,
        *,
        random: Callable[[], float] | Literal["engine"] | None = "engine",
    ) -> Plan:
        """The call's plan; a split with no key draws from the engine's random source
        (``random=None``: takes its heaviest arm, as an estimate does)."""
        return plan_route(
            self.registry,
            request,
            policy,
            calibrator=self.calibrator,
            features=features,
            latencies=self.latencies,
            random=self._random if random == "engine" else random,
        )
