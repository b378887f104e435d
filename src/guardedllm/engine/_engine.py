"""The sans-IO call planner: one logical call, driven through attempts, never doing I/O.

``Engine.run`` is a generator in the manner of httpx's ``Auth.auth_flow``: it yields steps —
``Send`` (one HTTP attempt), ``Race`` (a hedged one), ``Sleep`` (a backoff or a rate-limit wait),
``StateStep`` (a phase of guard operations on a shared store) — and receives the outcome of
each, until it returns a ``ChatCompletion`` or a ``StreamStart`` (a stream whose first chunk has
arrived), or raises. ``Client`` and ``AsyncClient`` run the same generator and differ only in how
they send, sleep and read bytes, so every decision lives here once. This module reads the call
top to bottom (route, pre-flight, attempts); the guard phases are in ``_phases``, the gates
before a send in ``_refusals``, what a success and a failure make in ``_answers`` and
``_failures``, hedging in ``_hedge``.

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
from functools import partial
from typing import TYPE_CHECKING, Literal

import attrs
from opentelemetry.context import Context

from guardedllm import defaults
from guardedllm._request import check_provider_options
from guardedllm._structured import answer_check, require_schema, schema_of
from guardedllm.engine._answers import answered, finished, send, stream_started
from guardedllm.engine._call import Call, Settings, Turn
from guardedllm.engine._counting import counted
from guardedllm.engine._embeddings import check_kinds, with_usage
from guardedllm.engine._failures import failed
from guardedllm.engine._guards import Guards
from guardedllm.engine._hedge import LatencyWindow, RaceSettings, hedge_partner, race
from guardedllm.engine._outcomes import settle
from guardedllm.engine._phases import (
    admit,
    close_turns,
    holding,
    later,
    run_phase,
    settle_answer,
    withdraw_hedge,
)
from guardedllm.engine._prepare import prepare
from guardedllm.engine._recording import (
    Draft,
    draft_for,
    end_unanswered,
    record_answer,
    record_call,
)
from guardedllm.engine._refusals import (
    admitted,
    rate_limited,
    readmitted,
)
from guardedllm.engine._routing import (
    ShadowBook,
    ShadowJob,
    escalation_after,
    features_for,
    hand_over_shadow,
    sample_shadow_job,
)
from guardedllm.engine._steps import Outcome, Sleep, Step, StreamStart, StreamStarted
from guardedllm.engine._targets import Targets
from guardedllm.errors import (
    GuardedLLMError,
)
from guardedllm.estimate import Calibrator, Estimate, get_encoding
from guardedllm.estimate._encodings import BUNDLED_ENCODINGS
from guardedllm.guards import BreakerConfig, RetryBudgetConfig, SpendBudget
from guardedllm.policy import Policy
from guardedllm.providers import wire_format_for
from guardedllm.providers.base import Target, WireFormat
from guardedllm.registry import Deployment, Registry
from guardedllm.routing import Plan, RouteFeatures, plan_route
from guardedllm.state import StateBackend
from guardedllm.state.failover import OnError
from guardedllm.telemetry import Telemetry
from guardedllm.types import ChatCompletion, ChatRequest, CreateEmbeddingResponse

if TYPE_CHECKING:
    from guardedllm.record import Recorder

__all__ = ["Engine"]

Flow = Generator[Step, Outcome | None, ChatCompletion | CreateEmbeddingResponse | StreamStart]
# What one deployment's turns end in: the result, or None to move on.
Turned = Generator[
    Step, Outcome | None, ChatCompletion | CreateEmbeddingResponse | StreamStart | None
]


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
        state_on_error: OnError = "local",
    ) -> None:
        self.registry = registry
        self.policy = policy
        self._environ = environ
        self._targets = Targets(registry, environ)
        self._clock = self.clock = clock
        self._wall_clock = self.wall_clock = wall_clock
        self.latencies = LatencyWindow()
        self.shadows = ShadowBook()
        # Set by the client: where each sampled call's record goes (None: nothing is recorded).
        self.recorder: Recorder | None = None
        # Set by the driver: runs a shadow copy's flow in the background. None: no copies.
        self.spawn_shadow: Callable[[ShadowJob], None] | None = None
        self._random = self.random = random
        self.max_body_bytes = max_body_bytes
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
            on_error=state_on_error,
        )
        # Whether guard operations answer in process: then a phase runs where it stands, not
        # even through ``run_phase`` on the hottest ones (a generator per phase is measurable).
        self.inline = not self.guards.shared
        self._race_settings = RaceSettings(
            clock=clock,
            wall_clock=wall_clock,
            calibrator=self.calibrator,
            max_body_bytes=max_body_bytes,
            max_retry_after_s=registry.defaults.max_retry_after_s,
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
                max_body_bytes=self.max_body_bytes,
                wall_clock=self._wall_clock,
            )
        return estimate

    def target(self, deployment: Deployment) -> Target:
        """Where an attempt on ``deployment`` goes, with the API key read now."""
        return self._targets.of(deployment)

    def wire(self, kind: str) -> WireFormat:
        wire = self._wires.get(kind)
        if wire is None:
            wire = self._wires[kind] = wire_format_for(kind)
        return wire

    # ---------------------------------------------------------------- guard state

    @property
    def run_later(self) -> Callable[[Callable[[], object]], None]:
        """Set by a driver with an event loop: runs guard operations on a shared store in the
        background where the flow cannot yield them (``_phases.later``). By default, at
        once."""
        return self.guards.run_later

    @run_later.setter
    def run_later(self, run_later: Callable[[Callable[[], object]], None]) -> None:
        self.guards.run_later = run_later

    # ---------------------------------------------------------------- the call

    def run(
        self,
        request: ChatRequest,
        policy: Policy | None = None,
        *,
        context: Context | None = None,
        shadow_of: str | None = None,
        record_of: str | None = None,
    ) -> Flow:
        """Drive one logical call. See the module docstring for the protocol. ``context`` is
        the OpenTelemetry context the driver captured when the call began; ``shadow_of`` marks
        a shadow copy of a call to that route (see ``_routing``); ``record_of``, the record id
        of the call a shadow copy copies when that call is recorded (the copy is, too)."""
        started = self._clock()
        span = self.telemetry.start_call(
            requested=request.model, request=request, parent_context=context, now=started
        )
        if shadow_of is not None:
            span.mark_shadow(shadow_of)
        call: Call | None = None
        job: ShadowJob | None = None
        draft: Draft | None = None
        local_ops = 0 if self.inline else self.guards.local_ops()
        try:
            # A shadow copy's policy is complete as given: the client's would add fallbacks.
            effective = policy if shadow_of is not None and policy else self._policy(policy)
            features = features_for(request, effective)
            # Recorded: a sampled call, and the copy of a recorded one; an embeddings call is
            # not (the recorder's format is chat's).
            recorded = self.recorder is not None and (shadow_of is None or record_of is not None)
            draft = (
                draft_for(self, features, record_of) if recorded and not request.embedding else None
            )
            plan = self._plan(request, effective, features)
            call = Call(
                clock=self._clock,
                plan=plan,
                settings=Settings.of(effective, plan, self.registry.defaults),
                started=started,
                span=span,
            )
            call.draft = draft
            job = sample_shadow_job(
                call,
                request,
                effective,
                features=features,
                context=context,
                runs_shadows=self.spawn_shadow is not None,
                random=self._random,
            )
            # An answer asked to follow a JSON schema is checked against it: one that does not
            # escalates where the route escalates invalid answers, else fails the call.
            schema = schema_of(request.response_format)
            validator = (
                effective.validator if schema is None else answer_check(schema, effective.validator)
            )
            result = yield from self._route(call, request, validator)
            if not self.inline:
                self.guards.note_local_state(span, local_ops)
            # No shadow copy is made of an embeddings call (``check_kinds``).
            if job is not None and not isinstance(result, CreateEmbeddingResponse):
                self._hand_over(call, job, result)
                if isinstance(result, StreamStart):  # its guard info predates the copy
                    tracker = result.tracker
                    tracker.guard = attrs.evolve(tracker.guard, decisions=tuple(call.decisions))
            if not isinstance(result, StreamStart):
                result = finished(call, result, now=self._clock())
                if draft is not None and isinstance(result, ChatCompletion):
                    record_answer(self, call, result)
            return result
        except GuardedLLMError as exc:
            if not self.inline:
                self.guards.note_local_state(span, local_ops)
            if call is not None:
                if not exc.attempts:
                    exc.attempts = tuple(call.attempts)
                if job is not None:
                    self._hand_over(call, job, None)
            end_unanswered(self, span, draft, request, call, started=started, error=exc)
            raise
        except Exception as exc:  # a bug, such as in the caller's validator: an error still
            end_unanswered(self, span, draft, request, call, started=started, error=exc)
            raise
        except BaseException:  # the driver gave up on the call (cancelled, or closed the flow)
            end_unanswered(self, span, draft, request, call, started=started, error=None)
            raise

    def _hand_over(
        self, call: Call, job: ShadowJob, result: ChatCompletion | StreamStart | None
    ) -> None:
        now = self._clock()
        hand_over_shadow(call, job, result, shadows=self.shadows, spawn=self.spawn_shadow, now=now)

    def _route(
        self,
        call: Call,
        request: ChatRequest,
        validator: Callable[[ChatCompletion], bool] | None,
    ) -> Flow:
        """The plan's deployments in turn, then the escalation target if the outcome calls
        for it (a failure, an answer cut at its limit, one the validator rejects). An answer
        asked to follow a JSON schema must match it: one that does not escalates where the
        route escalates invalid answers, and fails the call (``StructuredOutputError``) if it
        is the last."""
        schema = schema_of(request.response_format)
        if schema is not None:
            validator = answer_check(schema, validator)
        try:
            result = yield from self._through(call, request, call.plan.deployments)
        except GuardedLLMError as error:
            larger = escalation_after(call, now=self._clock(), error=error)
            if not larger:
                raise
            result = yield from self._through(call, request, larger)
        else:
            if isinstance(result, ChatCompletion):
                larger = escalation_after(
                    call, now=self._clock(), completion=result, validator=validator
                )
                if larger:
                    result = yield from self._through(call, request, larger)
        if schema is not None and isinstance(result, ChatCompletion):
            require_schema(result, schema)
        return result

    def _through(
        self, call: Call, request: ChatRequest, deployments: tuple[Deployment, ...]
    ) -> Flow:
        call.trying = deployments
        call.refused_open = []
        for deployment in deployments:
            result = yield from self._on_deployment(call, request, deployment)
            if result is not None:
                return result
        if len(call.refused_open) == len(deployments):
            # Every deployment refused the call as open: Envoy's panic mode, bounded. The least
            # bad one (half-open, else the soonest to probe) gets its breaker's panic share.
            deployment, _ = min(call.refused_open, key=lambda refused: refused[1].retry_in_s or 0)
            call.reason = "panic"
            result = yield from self._on_deployment(call, request, deployment, panic=True)
            if result is not None:
                return result
        raise call.final_error()

    def _on_deployment(
        self, call: Call, request: ChatRequest, deployment: Deployment, *, panic: bool = False
    ) -> Turned:
        """Try one deployment: the result, or None to move on (the reason is on ``call``).

        The turns (the attempt, and a hedge once there is one) are let go of here whatever
        happens: through a state step when the flow can still yield, else, when the driver is
        closing it (a cancellation), by ``_phases.later``, which never runs a shared store's
        operation on the event loop; after a state step that ran late (``call.late``), once
        it has ended, by whatever it took."""
        turns = [Turn(deployment=deployment, permit=None)]
        guards = self.guards
        try:
            result = yield from self._turns(call, request, turns, panic=panic)
        except Exception:
            if call.late is not None:
                call.late.then(partial(guards.run, close_turns(guards, turns)))
            elif holding(turns):
                yield from run_phase(guards, close_turns(guards, turns))
            raise
        except BaseException:  # GeneratorExit: the flow may not yield any more
            if holding(turns):
                later(guards, close_turns(guards, turns))
            raise
        if holding(turns):
            yield from run_phase(guards, close_turns(guards, turns))
        return result

    def _turns(self, call: Call, request: ChatRequest, turns: list[Turn], *, panic: bool) -> Turned:
        attempt = turns[0]
        deployment = attempt.deployment
        guards = self.guards
        admission = (
            guards.run(admit(guards, attempt, panic=panic))
            if self.inline  # in process: no generator for the step (the hot path)
            else (yield from run_phase(guards, admit(guards, attempt, panic=panic), call))
        )
        if not admitted(call, attempt, *admission, panic=panic):
            return None
        prepared = yield from prepare(self, call, request, attempt, deposit=True)
        if not prepared:
            return None
        backup: Turn | None = None
        for number in range(1, call.settings.max_attempts + 1):
            if number > 1 and not (yield from readmitted(guards, call, attempt)):
                return None
            refused = yield from rate_limited(guards, call, attempt, clock=self._clock)
            if refused is not None:  # the permit goes back as the turn is let go of
                call.skip(deployment, refused)
                return None
            remaining = call.deadline - self._clock()
            if remaining <= 0:  # the grant goes back as the turn is let go of: nothing is sent
                raise call.deadline_error()
            if number == 1:
                backup = yield from hedge_partner(
                    guards,
                    call,
                    deployment,
                    latencies=self.latencies,
                    prepare=partial(
                        prepare,
                        self,
                        call,
                        request,
                        quiet=True,
                        count=False,
                        in_flight_usd=attempt.estimate.cost_usd_max,
                    ),
                )
                if backup is not None:
                    turns.append(backup)
                remaining = call.deadline - self._clock()
            timeout = min(attempt.timeout_cap, remaining)
            if backup is not None and timeout <= backup.hedge_delay_s:
                # The hedge could not answer before the deadline: it does not go.
                yield from run_phase(guards, withdraw_hedge(guards, backup, primary=deployment))
                turns.remove(backup)
                backup = None
            if backup is not None and number == 1:
                winner, outcome, latency, attempt_span = yield from race(
                    guards,
                    call,
                    request,
                    attempt,
                    backup=backup,
                    timeout=timeout,
                    settings=self._race_settings,
                )
            else:
                winner = attempt
                outcome, latency, attempt_span = yield from send(
                    call,
                    request,
                    attempt,
                    number,
                    timeout,
                    clock=self._clock,
                    max_body_bytes=self.max_body_bytes,
                )
            result, error, status = settle(
                outcome,
                winner.wire,
                winner.target,
                wall_clock=self._wall_clock,
                embedding=request.embedding,
            )
            if error is None:
                self.latencies.record(winner.deployment.name, latency)
                if isinstance(outcome, StreamStarted):
                    return stream_started(
                        guards,
                        call,
                        request,
                        winner,
                        number=number,
                        outcome=outcome,
                        status=status,
                        latency=latency,
                        attempt_span=attempt_span,
                        calibrator=self.calibrator,
                        clock=self._clock,
                        record=partial(record_call, self) if call.draft is not None else None,
                    )
                assert result is not None
                calibrator: Calibrator | None = self.calibrator
                if isinstance(result, CreateEmbeddingResponse):
                    if result.usage is None:  # the estimate stands in: nothing to learn
                        calibrator = None
                        result = with_usage(result, winner.estimate)
                    usage = result.billed()
                else:
                    usage = result.usage
                settlement = settle_answer(
                    guards,
                    calibrator,
                    winner,
                    outcome,
                    usage,
                    latency=latency,
                    span=call.span,
                )
                # In process: run where it stands, not through a generator (the hot path).
                cost = (
                    guards.run(settlement)
                    if self.inline
                    else (yield from run_phase(guards, settlement))
                )
                return answered(
                    call,
                    winner,
                    number=number,
                    result=result,
                    status=status,
                    latency=latency,
                    attempt_span=attempt_span,
                    cost=cost,
                    now=self._clock(),
                )
            attempt_span.end_error(error, status=status, now=self._clock())
            wait = yield from run_phase(
                guards,
                failed(
                    guards,
                    call,
                    winner,
                    outcome,
                    number=number,
                    error=error,
                    status=status,
                    latency=latency,
                    overrides=self.registry.provider_of(winner.deployment).outcomes,
                    max_retry_after_s=self.registry.defaults.max_retry_after_s,
                    clock=self._clock,
                    random=self._random,
                ),
            )
            if wait is None:
                return None
            yield Sleep(seconds=wait)
        return None

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
        (``random=None``: takes its heaviest arm, as an estimate does). Its provider options
        must each name a provider kind or a provider of the registry, and a call to a deployment
        of the other kind (chat, embedding) is refused here (``_embeddings.check_kinds``)."""
        if request.provider_options:
            check_provider_options(request, self.registry.providers)
        plan = plan_route(
            self.registry,
            request,
            policy,
            calibrator=self.calibrator,
            features=features,
            latencies=self.latencies,
            random=self._random if random == "engine" else random,
        )
        check_kinds(plan, request, hedging=policy.hedge_after_s is not None)
        return plan
