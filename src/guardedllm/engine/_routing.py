"""What the engine decides around a plan: the routing features of a call, escalation to a
larger model, and shadow copies to a candidate.

Shadow copies are the one part a driver runs on the side: the engine samples the call when it
plans it (holding a place among the route's copies in flight, so that copies cannot pile up),
and once the caller has its answer or error it hands a ``ShadowJob`` to the driver's spawner,
which runs ``shadow_flow`` in the background (a thread, a task). Nothing the copy does reaches
the caller: its errors, its latency and its answer are recorded in the ``ShadowBook`` only.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING

import attrs
from opentelemetry.context import Context as OtelContext

from guardedllm import defaults
from guardedllm.engine._classify import STATUS_VERDICTS
from guardedllm.errors import (
    AllRoutesFailedError,
    DeadlineExceededError,
    GuardedLLMError,
    ProviderError,
)
from guardedllm.policy import Policy
from guardedllm.registry import Deployment
from guardedllm.routing import (
    EscalationVerdict,
    RouteFeatures,
    ShadowPlan,
    decide_escalation,
    sample_shadow,
)
from guardedllm.telemetry import EVENT_ESCALATION, EVENT_SHADOW
from guardedllm.telemetry import _semconv as sc
from guardedllm.types import ChatCompletion, ChatRequest

if TYPE_CHECKING:
    from guardedllm.engine._call import Call
    from guardedllm.engine._steps import Outcome, Step, StreamStart

__all__ = [
    "ShadowBook",
    "ShadowJob",
    "ShadowResult",
    "ShadowStats",
    "escalation_after",
    "features_for",
    "hand_over_shadow",
    "sample_shadow_job",
    "shadow_flow",
]

# Skips and escalations, for people reading logs: names and reasons, never content or keys.
logger = logging.getLogger("guardedllm")


def features_for(request: ChatRequest, policy: Policy) -> RouteFeatures:
    """The routing input of one call besides the request: the policy's tags, its sticky key
    (else the request's ``user``) and its forced split arm."""
    key = policy.route_key if policy.route_key is not None else request.user
    if key is None and policy.tags is None and policy.split_arm is None:
        return _NO_FEATURES
    return RouteFeatures(tags=policy.tags or {}, key=key, arm=policy.split_arm)


_NO_FEATURES = RouteFeatures()


# ---------------------------------------------------------------------------- escalation


def escalation_after(
    call: Call,
    *,
    now: float,
    completion: ChatCompletion | None = None,
    error: GuardedLLMError | None = None,
    validator: Callable[[ChatCompletion], bool] | None = None,
) -> tuple[Deployment, ...]:
    """The deployments to escalate to after the plan's outcome (empty: stay with it). The
    decision is noted on the call, in ``resp.guard.decisions`` and as a span event.

    A failure escalates like a fallback would: a client error (400, 401, 403, 413, 422) ends
    the call unless the policy lets client errors fall back. No escalation starts once the
    deadline has run out: an answer in hand is then returned as it is.
    """
    escalation = call.plan.escalation
    if escalation is None or call.escalated:
        return ()
    verdict: EscalationVerdict
    if isinstance(error, DeadlineExceededError) or now >= call.deadline:
        verdict = EscalationVerdict(escalate=False, reason="the deadline ran out: no escalation")
    elif _ends_the_call(error) and not call.settings.fallback_on_client_error:
        verdict = EscalationVerdict(
            escalate=False,
            reason=f"{type(error).__name__} is a client error, which would fail anywhere: "
            "no escalation (Policy(fallback_on_client_error=True) allows it)",
        )
    else:
        verdict = decide_escalation(
            escalation, completion=completion, error=error, validator=validator
        )
    call.decide(f"escalation: {verdict.reason}")
    if not verdict.escalate:
        return ()
    call.escalate()
    call.span.event(EVENT_ESCALATION, {sc.GUARDEDLLM_DECISION_REASON: verdict.reason})
    logger.info("call to %s: %s", call.plan.requested, verdict.reason)
    return escalation.deployments


def _ends_the_call(error: GuardedLLMError | None) -> bool:
    """Whether ``error`` is a vendor's client error, which no other deployment would accept."""
    return (
        isinstance(error, ProviderError)
        and error.status is not None
        and STATUS_VERDICTS.get(error.status) == "fail"
    )


# ---------------------------------------------------------------------------- shadow


@attrs.frozen(kw_only=True)
class ShadowResult:
    """One shadow copy and the call it copied, side by side.

    ``ok``/``error_type``/``latency_s``/``cost_usd``/``completion`` are the candidate's;
    ``primary_*`` the caller's call: the deployment that answered (None when the call failed),
    whether it answered, its latency up to its answer (for a stream: its first chunk) and its
    cost (None for a stream, whose cost is known only when it ends). ``same_content`` says
    whether both first choices' text is identical (None unless both answered with text).
    """

    route: str
    candidate: str
    ok: bool
    error_type: str | None
    error: str | None
    latency_s: float
    cost_usd: float | None
    completion: ChatCompletion | None = attrs.field(repr=False)
    primary_deployment: str | None
    primary_ok: bool
    primary_latency_s: float
    primary_cost_usd: float | None
    same_content: bool | None


@attrs.frozen(kw_only=True)
class ShadowStats:
    """A route's shadow copies to one candidate so far: started, skipped because
    ``max_in_flight`` copies were running, answered, failed, abandoned (the client closed
    under them), and sums to compare."""

    route: str
    candidate: str
    sent: int = 0
    skipped_full: int = 0
    answered: int = 0
    failed: int = 0
    abandoned: int = 0
    same_content: int = 0
    latency_s_total: float = 0.0
    primary_latency_s_total: float = 0.0
    cost_usd_total: float = 0.0
    primary_cost_usd_total: float = 0.0
    in_flight: int = 0

    @property
    def mean_latency_s(self) -> float | None:
        done = self.answered + self.failed
        return self.latency_s_total / done if done else None


@attrs.frozen(kw_only=True)
class ShadowJob:
    """A sampled copy, ready for the driver to run once the primary call has its outcome."""

    plan: ShadowPlan
    request: ChatRequest
    policy: Policy
    context: OtelContext | None
    sampled: str  # why the call is in the sample
    primary_deployment: str | None = None
    primary_ok: bool = False
    primary_text: str | None = None
    primary_cost_usd: float | None = None
    primary_latency_s: float = 0.0
    record_id: str | None = None  # the primary call's record, when it is recorded


class ShadowBook:
    """Shadow copies running per route, their recent results and running totals. Safe to
    use from several threads (the sync driver runs copies on a pool)."""

    def __init__(self, keep: int = defaults.SHADOW_RESULTS_KEPT) -> None:
        self._lock = threading.Lock()
        self._in_flight: dict[str, int] = {}
        self._results: deque[ShadowResult] = deque(maxlen=keep)
        self._stats: dict[tuple[str, str], ShadowStats] = {}

    def admit(self, plan: ShadowPlan) -> tuple[bool, str]:
        """Whether a sampled copy may start now (else why not); one that may holds a place
        among the route's copies until ``release``. A full route skips the copy, never queues
        it."""
        with self._lock:
            running = self._in_flight.get(plan.route, 0)
            if running >= plan.max_in_flight:
                self._count(plan, skipped_full=1)
                return False, (
                    f"{running} shadow copies in flight, the most allowed "
                    f"({plan.max_in_flight}): skipped so shadows cannot pile up"
                )
            self._in_flight[plan.route] = running + 1
            self._count(plan, sent=1)
        return True, ""

    def release(self, plan: ShadowPlan, result: ShadowResult | None) -> None:
        """The copy ended with ``result``, or was abandoned or never started (None)."""
        with self._lock:
            self._in_flight[plan.route] = max(0, self._in_flight.get(plan.route, 0) - 1)
            if result is None:
                self._count(plan, abandoned=1)
                return
            self._results.append(result)
            self._count(
                plan,
                answered=int(result.ok),
                failed=int(not result.ok),
                same_content=int(bool(result.same_content)),
                latency_s_total=result.latency_s,
                primary_latency_s_total=result.primary_latency_s,
                cost_usd_total=result.cost_usd or 0.0,
                primary_cost_usd_total=result.primary_cost_usd or 0.0,
            )

    def _count(self, plan: ShadowPlan, **changes: float) -> None:
        key = (plan.route, plan.deployment.name)
        stats = self._stats.get(key) or ShadowStats(route=key[0], candidate=key[1])
        updated = {name: getattr(stats, name) + value for name, value in changes.items()}
        updated["in_flight"] = self._in_flight.get(plan.route, 0)
        self._stats[key] = attrs.evolve(stats, **updated)

    def results(self) -> list[ShadowResult]:
        with self._lock:
            return list(self._results)

    def stats(self) -> dict[str, ShadowStats]:
        """Per route (``route -> candidate`` when a route's candidate changed)."""
        with self._lock:
            found: dict[str, ShadowStats] = {}
            for (route, candidate), stats in self._stats.items():
                label = route if route not in found else f"{route} -> {candidate}"
                found[label] = attrs.evolve(stats, in_flight=self._in_flight.get(route, 0))
            return found


def shadow_job(
    call: Call,
    request: ChatRequest,
    policy: Policy,
    context: OtelContext | None,
    *,
    sampled: str,
) -> ShadowJob:
    """The copy of ``request`` the candidate gets: not streamed, one attempt, no fallback, no
    escalation, with the call's deadline (its own, from when it starts) and spend budget key."""
    plan = call.plan.shadow
    assert plan is not None
    candidate = plan.deployment.name
    # Not streamed, and without the end-user id: not every vendor can carry it, and the
    # sample was already taken by it.
    copied = attrs.evolve(
        request, model=candidate, stream=False, stream_include_usage=False, user=None
    )
    shadow_policy = Policy(
        deadline_s=call.settings.deadline_s,
        timeout_s=call.settings.timeout_s,
        max_attempts=1,
        budget_key=policy.budget_key,
        allowed_deployments=(candidate,),
    )
    return ShadowJob(
        plan=plan, request=copied, policy=shadow_policy, context=context, sampled=sampled
    )


def note_shadow(call: Call, plan: ShadowPlan, sent: bool, reason: str) -> None:
    call.decide(f"shadow: {reason}")
    call.span.event(
        EVENT_SHADOW,
        {
            sc.GUARDEDLLM_DEPLOYMENT: plan.deployment.name,
            sc.GUARDEDLLM_SHADOW_SENT: sent,
            sc.GUARDEDLLM_DECISION_REASON: reason,
        },
    )


def first_text(completion: ChatCompletion | None) -> str | None:
    """The text of an answer's first choice (None: no answer, or no text)."""
    if completion is None or not completion.choices:
        return None
    return completion.choices[0].message.content


def shadow_flow(
    job: ShadowJob,
    *,
    run: Callable[..., Generator[Step, Outcome | None, object]],
    clock: Callable[[], float],
    shadows: ShadowBook,
    record: Callable[[str, ShadowResult], None] | None = None,
) -> Generator[Step, Outcome | None, None]:
    """Run one shadow copy to its end (with the engine's ``run``) and record it in
    ``shadows``, and, when its primary call was recorded, hand the pair to ``record``. Never
    raises a guardedllm error: the copy's failure is its result. The place it held is given
    back however it ends."""
    started = clock()
    completion: ChatCompletion | None = None
    failure: GuardedLLMError | None = None
    result: ShadowResult | None = None
    try:
        try:
            answer = yield from run(
                job.request,
                job.policy,
                context=job.context,
                shadow_of=job.plan.route,
                record_of=job.record_id,
            )
            assert isinstance(answer, ChatCompletion)  # a copy is never streamed
            completion = answer
        except AllRoutesFailedError as exc:  # one deployment, one attempt: say what failed
            cause = exc.__cause__
            failure = cause if isinstance(cause, GuardedLLMError) else exc
        except GuardedLLMError as exc:
            failure = exc
        texts = (first_text(completion), job.primary_text)
        result = ShadowResult(
            route=job.plan.route,
            candidate=job.plan.deployment.name,
            ok=completion is not None,
            error_type=type(failure).__name__ if failure is not None else None,
            error=str(failure) if failure is not None else None,
            latency_s=clock() - started,
            cost_usd=completion.guard.cost_usd if completion and completion.guard else None,
            completion=completion,
            primary_deployment=job.primary_deployment if job.primary_ok else None,
            primary_ok=job.primary_ok,
            primary_latency_s=job.primary_latency_s,
            primary_cost_usd=job.primary_cost_usd,
            same_content=texts[0] == texts[1] if None not in texts else None,
        )
    finally:
        shadows.release(job.plan, result)
    if result is not None and job.record_id is not None and record is not None:
        record(job.record_id, result)


def sample_shadow_job(
    call: Call,
    request: ChatRequest,
    policy: Policy,
    *,
    features: RouteFeatures,
    context: OtelContext | None,
    runs_shadows: bool,
    random: Callable[[], float],
) -> ShadowJob | None:
    """The copy this call sends if it is in the route's sample (sticky by its key, else
    a draw from ``random`` apart from the split's, so that the sample is not tied to one
    arm); none when the driver ``runs_shadows`` not."""
    plan = call.plan.shadow
    if plan is None:
        return None
    if not runs_shadows:
        note_shadow(call, plan, False, "this driver runs no shadow copies")
        return None
    draw = random() % 1.0 if features.key is None else None
    verdict = sample_shadow(plan, key=features.key, draw=draw, in_flight=0)
    if not verdict.send:
        note_shadow(call, plan, False, verdict.reason)
        return None
    return shadow_job(call, request, policy, context, sampled=verdict.reason)


def hand_over_shadow(
    call: Call,
    job: ShadowJob,
    result: ChatCompletion | StreamStart | None,
    *,
    shadows: ShadowBook,
    spawn: Callable[[ShadowJob], None] | None,
    now: float,
) -> None:
    """Give the sampled copy to the driver (``spawn``) now that the caller has its outcome
    (an answer, a stream's first chunk, or an error), if a place among the route's copies in
    ``shadows`` is free. Nothing here reaches the caller: a copy that cannot start is noted
    and dropped."""
    answered = call.answered
    completion = result if isinstance(result, ChatCompletion) else None
    job = attrs.evolve(
        job,
        primary_deployment=answered.deployment.name if answered is not None else None,
        primary_ok=result is not None,
        primary_text=first_text(completion),
        primary_cost_usd=call.billed if completion is not None else None,
        primary_latency_s=now - call.started,
        record_id=call.draft.id if call.draft is not None else None,
    )
    admitted, full = shadows.admit(job.plan)
    why = job.sampled if admitted else f"{job.sampled}, but {full}"
    if admitted:
        try:
            assert spawn is not None
            spawn(job)
        except Exception as exc:  # a client closing meanwhile: the copy is not sent
            shadows.release(job.plan, None)
            admitted, why = False, f"{job.sampled}, but it could not start ({exc})"
    note_shadow(call, job.plan, admitted, why)
