"""The state of one logical call, and of one deployment's turn within it, while the engine
drives them."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

import attrs
import httpx

from guardedllm.engine._guards import Guards, report_transition
from guardedllm.errors import (
    AllRoutesFailedError,
    ContextWindowExceededError,
    DeadlineExceededError,
    GuardedLLMError,
)
from guardedllm.estimate import Estimate
from guardedllm.guards import Permit, Reservation
from guardedllm.policy import Policy
from guardedllm.providers.base import Target, WireFormat
from guardedllm.registry import Defaults, Deployment
from guardedllm.routing import Plan
from guardedllm.state.flow import Flow, lockstep
from guardedllm.telemetry import EVENT_SKIPPED, CallSpan, error_type
from guardedllm.types import Attempt, GuardInfo

if TYPE_CHECKING:
    from guardedllm.engine._recording import Draft
    from guardedllm.engine._steps import Late

__all__ = ["Call", "Settings", "Turn"]

# Skips and escalations, for people reading logs: names and reasons, never content or keys.
logger = logging.getLogger("guardedllm")


@attrs.frozen(kw_only=True)
class Settings:
    deadline_s: float
    max_attempts: int
    timeout_s: float | None  # None: each provider's own, else [defaults]
    max_cost_usd: float | None
    exact_tokens: bool
    budget_key: str | None
    first_chunk_timeout_s: float | None
    hedge_after_s: float | Literal["p95"] | None
    fallback_on_client_error: bool = False
    clamp_max_tokens: bool = False
    refuse_inexact: bool = False

    @classmethod
    def of(cls, policy: Policy, plan: Plan, defaults: Defaults) -> Settings:
        """The call's settings: the policy's, else the route's, else ``[defaults]``. Most calls
        of a client share their policy and route: their settings are made once (``_made``)."""
        key = (id(policy), plan.deadline_s, plan.max_attempts, plan.max_cost_usd, id(defaults))
        made = _made.get(key)
        if made is not None and made[0] is policy and made[1] is defaults:
            return made[2]
        settings = cls._of(policy, plan, defaults)
        if len(_made) >= _MADE_MAX:  # a policy per call (per-call overrides): start afresh
            _made.clear()
        _made[key] = (policy, defaults, settings)
        return settings

    @classmethod
    def _of(cls, policy: Policy, plan: Plan, defaults: Defaults) -> Settings:
        return cls(
            deadline_s=policy.deadline_s or plan.deadline_s or defaults.deadline_s,
            max_attempts=policy.max_attempts or plan.max_attempts or defaults.max_attempts,
            timeout_s=policy.timeout_s,
            max_cost_usd=policy.max_cost_usd or plan.max_cost_usd,
            exact_tokens=bool(policy.exact_tokens),
            budget_key=policy.budget_key,
            first_chunk_timeout_s=policy.first_chunk_timeout_s,
            hedge_after_s=policy.hedge_after_s,
            fallback_on_client_error=bool(policy.fallback_on_client_error),
            clamp_max_tokens=bool(policy.clamp_max_tokens),
            refuse_inexact=bool(policy.refuse_inexact),
        )

    def attempt_timeout(self, provider_timeout_s: float | None, defaults: Defaults) -> float:
        """One attempt's timeout: the policy's, else the provider's, else ``[defaults]``."""
        return self.timeout_s or provider_timeout_s or defaults.timeout_s


# Settings by what they are made of: the policy and defaults (by identity, held here so their
# ids stay theirs) and the route's own settings. Unlocked: a racing write stores an equal value.
_made: dict[
    tuple[int, float | None, int | None, float | None, int], tuple[Policy, Defaults, Settings]
] = {}
_MADE_MAX = 256


class Call:
    """The state of one logical call while the engine drives it."""

    def __init__(
        self,
        *,
        plan: Plan,
        settings: Settings,
        started: float,
        span: CallSpan,
        clock: Callable[[], float],
    ):
        self.plan = plan
        self.clock = clock  # the engine's, which ``started`` and ``deadline`` are on
        self.settings = settings
        self.started = started
        self.deadline = started + settings.deadline_s
        self.span = span
        self.attempts: list[Attempt] = []
        self.first_refusal: GuardedLLMError | None = None
        self.last_error: GuardedLLMError | None = None
        self.reason: str | None = None  # why the next attempt happens (None for the first)
        self.last_sent: str | None = None  # the deployment of the attempt sent last
        # The largest context window a vendor said this prompt does not fit (0: none did): a
        # deployment with a window no larger is passed over without sending.
        self.outgrown_window = 0
        self.trying: tuple[Deployment, ...] = plan.deployments  # the plan, or the escalation
        self.escalated = False
        # The deployments of the pass through ``trying`` that refused the call as open, with
        # their refusals: when every one did, the call may panic (``Engine._through``).
        self.refused_open: list[tuple[Deployment, Permit]] = []
        self.decisions: list[str] = []  # escalation and shadow decisions, with their reasons
        self.billed: float | None = None  # what the call's answered attempts cost
        # What the call has spent of ``max_cost_usd``: every answered or hedged attempt's
        # settled cost, its worst case where the vendor reported no usage (as the budgets
        # were charged). A deployment's pre-flight check compares with what is left.
        self.committed_usd = 0.0
        self.answered: Turn | None = None  # the turn whose answer the call returns
        self.first_chunk_at: float | None = None  # a stream's: when its first chunk came
        self.draft: Draft | None = None  # the call's record, begun, if it is recorded
        # A state step the driver stopped waiting for at the deadline, still running: what
        # the call holds is let go of after it ends (``Late.then``), never while it runs.
        self.late: Late | None = None

    def guard_info(self, *, cost_usd: float | None, now: float) -> GuardInfo:
        """What the call did, up to ``now``, for the attempt that answered."""
        answered = self.answered
        assert answered is not None
        return GuardInfo(
            requested=self.plan.requested,
            route=self.plan.route,
            route_reason=self.plan.reason,
            deployment=answered.deployment.name,
            attempts=tuple(self.attempts),
            estimate=answered.estimate,
            cost_usd=cost_usd,
            latency_s=now - self.started,
            plan=self.plan.explanation,
            decisions=tuple(self.decisions),
        )

    def decide(self, decision: str) -> None:
        self.decisions.append(decision)

    def escalate(self) -> None:
        """Move on to the escalation target: its attempts say so, and its errors are the ones
        a failure reports (the plan's are in ``attempts``)."""
        self.escalated = True
        self.reason = "escalation"
        self.last_error = None
        self.first_refusal = None

    def bill(self, cost: float | None, *, worst_usd: float) -> None:
        """Add an answered attempt's cost (None: unknown, which leaves a known total); the cap
        counts its worst case ``worst_usd`` then, as the budgets do."""
        if cost is not None:
            self.billed = cost if self.billed is None else self.billed + cost
        self.committed_usd += cost if cost is not None else worst_usd

    def settled(self, turn: Turn, cost: float | None) -> None:
        """Note an attempt settled at ``cost`` above the worst case reserved for it (the
        vendor billed more than the estimate allowed): a decision in ``guard.decisions`` and
        the ``guardedllm.cost.overshoot`` metric. The budgets and the cap were charged the
        actual cost; this overshoot is the most either can be overspent by."""
        worst = turn.estimate.cost_usd_max
        if cost is None or not cost > worst:
            return
        self.decide(
            f"cost overshoot: {turn.deployment.name} cost ${cost:.6f}, "
            f"${cost - worst:.6f} over its ${worst:.6f} worst case"
        )
        self.span.cost_overshoot(turn.deployment.name, cost - worst)

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
        logger.debug(
            "call to %s: skipped %s (%s)",
            self.plan.requested,
            deployment.name,
            type(refusal).__name__,
        )
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
            if isinstance(error, ContextWindowExceededError):
                window = self.plan.registry.deployment(target.deployment).context_window
                self.outgrown_window = max(self.outgrown_window, window)

    def note_cancelled(self, target: Target, *, latency: float) -> None:
        """A hedged attempt that lost the race was cancelled (or its answer discarded)."""
        self.attempts.append(
            Attempt(
                deployment=target.deployment,
                provider=target.provider,
                number=1,
                outcome="cancelled",
                latency_s=latency,
                retry_reason="hedge",
            )
        )

    def final_error(self) -> GuardedLLMError:
        """The error for a plan that ran out, naming what became of each deployment: the
        first refusal if nothing was sent (with the others' own reasons when several were
        refused), else ``AllRoutesFailedError``."""
        story = deployment_story(self.attempts)
        if self.last_error is None and self.first_refusal is not None:
            refusal = self.first_refusal
            if len(story) > 1:  # the type stays the first refusal's; the message tells all
                refusal.args = (f"{refusal}\nEvery deployment of the plan:\n{_lines(story)}",)
            return refusal
        last = self.last_error
        detail = f"{type(last).__name__}: {last}" if last is not None else "nothing was sent"
        error = AllRoutesFailedError(
            f"{self.plan.requested!r}: no deployment answered:\n{_lines(story)}\n"
            f"Last error: {detail} See .attempts for each try; add a fallback on another "
            "provider to the route, or check the providers' status."
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


def deployment_story(attempts: list[Attempt]) -> list[str]:
    """What became of each deployment a call considered, in the order it came to them: sent
    and failed (how many times, the last error), skipped (by whom: the cap, the breaker, the
    budget, a mark), or lost a hedge race."""
    order: dict[str, list[Attempt]] = {}
    for attempt in attempts:
        order.setdefault(attempt.deployment, []).append(attempt)
    story = []
    for deployment, tries in order.items():
        sent = [a for a in tries if a.outcome in ("ok", "error", "cancelled")]
        last = tries[-1]
        why = _first_sentence(last.error or "", deployment)
        if len(why) > _STORY_CHARS:
            why = why[: _STORY_CHARS - 3] + "..."
        status = f", HTTP {last.status}" if last.status is not None else ""
        if last.outcome == "skipped":
            before = f"sent {len(sent)} time(s), then " if sent else ""
            story.append(f"{deployment}: {before}not sent ({last.error_type}: {why})")
        elif last.outcome == "ok":
            story.append(f"{deployment}: answered")
        else:
            what = "failed" if last.outcome == "error" else "lost a hedge race"
            story.append(
                f"{deployment}: sent {len(sent)} time(s), {what} "
                f"({last.error_type}{status}{': ' + why if why else ''})"
            )
    return story


# How much of a deployment's last error its line in a failed call's message keeps.
_STORY_CHARS = 200


def _first_sentence(error: str, deployment: str) -> str:
    """What an attempt's error says, without the deployment's name it starts with and the
    advice after its first sentence (the call's message gives its own)."""
    line = error.splitlines()[0] if error else ""
    line = line.removeprefix(f"{deployment}: ")
    head, dot, _ = line.partition(". ")
    return head + ("." if dot else "")


def _lines(story: list[str]) -> str:
    return "\n".join(f"  - {line}" for line in story)


@attrs.define
class Turn:
    """One deployment's turn within a call: what was prepared for it, and the guard state it
    holds (a breaker permit, a rate-limit grant, a spend reservation) until ``close`` lets go
    of it."""

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
    hedge_delay_s: float = 0.0
    # The rate-limit grant of the next attempt (one request and ``tokens`` tokens), held until
    # its outcome is accounted: "taken" once the limiter granted it, "sent" once the attempt
    # went to the driver; None when nothing is held.
    grant: Literal["taken", "sent"] | None = None

    @property
    def holds(self) -> bool:
        """Whether ``close`` has anything to let go of."""
        if self.permit is not None:
            return True
        return not self.handed_over and (self.grant is not None or self.reservation is not None)

    # Each method below is a flow of guard operations (``guardedllm.state.flow``): the engine
    # runs it within a phase, side by side with the others of that phase.

    def record_permit(
        self,
        guards: Guards,
        outcome: Literal["success", "failure", "ignored"],
        latency: float,
        now: float,
        span: CallSpan,
    ) -> Flow[None]:
        if self.permit is not None:
            transition = yield from guards.breaker.record_flow(
                self.deployment.name, self.permit, outcome, latency, now
            )
            self.permit = None
            report_transition(transition, span)

    def release_permit(self, guards: Guards, now: float) -> Flow[None]:
        if self.permit is not None:
            yield from guards.breaker.record_flow(
                self.deployment.name, self.permit, "ignored", 0.0, now
            )
            self.permit = None

    def sending(self) -> None:
        """The attempt goes to the driver now: from here the vendor may see it."""
        if self.grant is not None:
            self.grant = "sent"

    def release_grant(self, guards: Guards, now: float) -> Flow[None]:
        """Give back a grant whose attempt was never sent: its request slot and its tokens."""
        if self.grant is not None:
            deployment = self.deployment
            yield from guards.limiter.release_flow(
                deployment.name,
                rpm=deployment.rpm,
                tpm=deployment.tpm,
                tokens=self.tokens,
                now=now,
            )
            self.grant = None

    def settle_grant(self, guards: Guards, now: float) -> Flow[None]:
        """Settle the grant of an attempt sent without an answer to account: its tokens come
        back (none is known to be used), its request slot stays taken (it was sent)."""
        if self.grant is not None:
            yield from guards.limiter.correct_flow(
                self.deployment.name,
                tpm=self.deployment.tpm,
                reserved_tokens=self.tokens,
                actual_tokens=0,
                now=now,
            )
            self.grant = None

    def close(self, guards: Guards, *, now: float, wall_now: float) -> Flow[None]:
        """Let go of what is still held: a permit abandoned between acquire and outcome (not
        the deployment's fault), a rate-limit grant and a reservation nothing was accounted
        against (the driver abandoned the attempt: a cancellation, a KeyboardInterrupt, a
        stream closed before its first chunk). Each goes back side by side with the others."""
        flows: list[Flow[None]] = [self.release_permit(guards, now)]
        if self.handed_over:  # the answer, or its stream, accounts for the grant
            self.grant = None
        elif self.grant == "taken":
            flows.append(self.release_grant(guards, now))
        elif self.grant == "sent":
            # Sent, then abandoned before an answer came. The vendor may have counted the
            # request and its input, but we have no usage to say how much, so this settles as
            # a failed attempt (a timeout, a dropped connection) does: the tokens come back and
            # the request slot stays taken. The spend reservation below is released the same
            # way. Undercounting is bounded: the next answer's rate-limit headers bring the
            # buckets down to the vendor's own count (``RateLimiter.learn``); keeping the
            # reservation instead let cancelled calls starve the limiter of tokens they never
            # used.
            flows.append(self.settle_grant(guards, now))
        if self.reservation is not None and not self.handed_over:
            flows.append(self._release_reservation(guards, wall_now))
        yield lockstep(*flows)

    def _release_reservation(self, guards: Guards, wall_now: float) -> Flow[None]:
        if self.reservation is not None:
            yield from guards.ledger.release_flow(self.reservation, wall_now=wall_now)
            self.reservation = None
