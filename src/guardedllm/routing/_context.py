"""What a policy reads while choosing (``Context``) and what it returns (``Selection``).

A ``Context`` lives for one planning call: it holds the registry, the request's needs, the
caller's features, the observed latencies, and caches the estimates and the prompt count that
several policies may ask for. Nothing in it reads a clock or the network.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol

import attrs

from guardedllm.estimate import Estimate
from guardedllm.registry import Deployment, Registry
from guardedllm.routing._decisions import Escalation, ShadowPlan
from guardedllm.routing._features import RouteFeatures, needed_capabilities
from guardedllm.types import ChatRequest, PlanEntry

if TYPE_CHECKING:
    from guardedllm.routing._policies import Split

__all__ = ["Context", "PlanEntry", "RoutePolicy", "Selection"]


@attrs.frozen(kw_only=True)
class Selection:
    """What a policy chose: ``entries`` in order (the included ones are the plan), plus the
    escalation and shadow settings of the branch taken, if any."""

    entries: tuple[PlanEntry, ...] = ()
    escalation: Escalation | None = None
    shadow: ShadowPlan | None = None

    def included(self) -> tuple[str, ...]:
        return tuple(e.deployment for e in self.entries if e.included)

    def prefixed(self, prefix: str) -> Selection:
        """The same choice, each reason prefixed by ``prefix`` (the enclosing policy's part)."""
        # Built directly rather than with attrs.evolve: this runs for every entry at every
        # level of a composed policy, and evolve's generic path is several times slower.
        entries = tuple(
            PlanEntry(deployment=e.deployment, included=e.included, reason=f"{prefix}: {e.reason}")
            for e in self.entries
        )
        return Selection(entries=entries, escalation=self.escalation, shadow=self.shadow)


class RoutePolicy(Protocol):
    """A routing building block: chooses an ordered selection of deployments for a call.

    ``trail`` holds the routes being expanded, outermost first, so that a route reaching
    itself is refused instead of recursing forever.
    """

    def select(self, context: Context, trail: tuple[str, ...]) -> Selection: ...


class Context:
    """The inputs of one planning call, with the per-call caches policies share."""

    def __init__(
        self,
        *,
        registry: Registry,
        request: ChatRequest,
        features: RouteFeatures,
        latencies: Mapping[str, float],
        estimate: Callable[[Deployment], Estimate],
        count_tokens: Callable[[], int],
        policy_of_route: Callable[[str], RoutePolicy],
        random: Callable[[], float] | None = None,
    ) -> None:
        self.registry = registry
        self.request = request
        self.features = features
        self.latencies = latencies
        self.estimate = estimate
        self.needs = needed_capabilities(request)
        self._count_tokens = count_tokens
        self._input_tokens: int | None = None
        self.policy_of_route = policy_of_route
        self._random = random
        # For the check of a forced split arm: the splits evaluated, and whether one had it.
        self.splits_seen: list[Split] = []
        self.arm_found = False
        # Each split met, with the title of the arm it assigned, in the order met.
        self.assigned: list[tuple[str, str]] = []

    def draw(self) -> float | None:
        """The caller's random draw, else one from the engine's source, taken only when a
        policy needs it (a split with no key); None when there is neither."""
        if self.features.draw is not None:
            return self.features.draw
        if self._random is None:
            return None
        return self._random() % 1.0  # a source may return 1.0; a draw is in [0, 1)

    def explore_draw(self) -> float | None:
        """A draw from the engine's random source alone (a caller's draw picks a split's arm
        and must not also decide exploration), or None when planning has no source."""
        if self._random is None:
            return None
        return self._random() % 1.0

    def input_tokens(self) -> int:
        """The estimated prompt tokens, counted once and only if a policy asks."""
        if self._input_tokens is None:
            self._input_tokens = self._count_tokens()
        return self._input_tokens
