"""The routing building blocks, as frozen values that compose.

Each block's ``select`` turns a ``Context`` into a ``Selection``: deployments in order, each
with the reason it is there or was left out. Blocks nest: a ``Chain`` of ``Use``s is a fallback
chain, a ``Split`` of chains an A/B test with fallbacks, ``Rules`` leading into an ``Escalate``
a cheap model for short prompts. A name (``Use``) may be a model, an alias or a route; a
route expands into its own policy, so config routes and code-built blocks mix freely.

Capability checks and the "no deployment can serve" error happen once, over the final plan,
in ``_plan``: here a block only orders and picks.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import attrs

from guardedllm import defaults
from guardedllm.errors import ArgumentError, InvalidRequestError
from guardedllm.registry import Condition
from guardedllm.routing._context import Context, RoutePolicy, Selection
from guardedllm.routing._decisions import Escalation, ShadowPlan
from guardedllm.routing._sticky import pick_weighted, position
from guardedllm.types import PlanEntry

__all__ = [
    "Arm",
    "Chain",
    "Cheapest",
    "Escalate",
    "Fastest",
    "Rule",
    "Rules",
    "Shadowed",
    "Split",
    "Use",
    "as_policy",
    "describe_condition",
    "matches",
]


def as_policy(value: RoutePolicy | str | Sequence[RoutePolicy | str]) -> RoutePolicy:
    """A block as given, ``Use(name)`` for a name, a ``Chain`` for a list of either."""
    if isinstance(value, str):
        return Use(name=value)
    if isinstance(value, (list, tuple)):
        return Chain(steps=value)
    assert not isinstance(value, Sequence)  # for mypy: any other sequence is a policy
    return value


def _optional_policy(
    value: RoutePolicy | str | Sequence[RoutePolicy | str] | None,
) -> RoutePolicy | None:
    return None if value is None else as_policy(value)


def _policies(values: Iterable[RoutePolicy | str]) -> tuple[RoutePolicy, ...]:
    return tuple(as_policy(v) for v in values)


def _rules(values: Iterable[Rule]) -> tuple[Rule, ...]:
    return tuple(values)


def _arms(values: Iterable[Arm]) -> tuple[Arm, ...]:
    return tuple(values)


def _triggers(values: Iterable[str]) -> frozenset[str]:
    return frozenset(values)


# Built directly rather than with attrs.evolve, whose generic path is several times slower:
# these run for every entry of every block of a composed policy, on every call.


def _share(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ArgumentError(f"{attribute.name} is a share of calls, from 0 to 1; got {value!r}")


def _entry(entry: PlanEntry, reason: str, *, included: bool | None = None) -> PlanEntry:
    """``entry`` with another reason (and inclusion)."""
    kept = entry.included if included is None else included
    return PlanEntry(deployment=entry.deployment, included=kept, reason=reason)


def _with(selection: Selection, *, entries: tuple[PlanEntry, ...]) -> Selection:
    """``selection`` with other entries, its escalation and shadow kept."""
    return Selection(entries=entries, escalation=selection.escalation, shadow=selection.shadow)


def _merge(selections: Iterable[Selection]) -> Selection:
    """Selections one after another; a deployment already included stays where it first came.
    Escalation and shadow come from the first selection that has them."""
    entries: list[PlanEntry] = []
    seen: set[str] = set()
    escalation = shadow = None
    for selection in selections:
        for entry in selection.entries:
            if entry.included and entry.deployment in seen:
                continue
            if entry.included:
                seen.add(entry.deployment)
            entries.append(entry)
        escalation = escalation or selection.escalation
        shadow = shadow or selection.shadow
    return Selection(entries=tuple(entries), escalation=escalation, shadow=shadow)


@attrs.frozen(kw_only=True)
class Use:
    """A model, alias or route by name. A route expands into its policy."""

    name: str

    def select(self, context: Context, trail: tuple[str, ...]) -> Selection:
        resolution = context.registry.resolve(self.name)  # ModelNotFoundError names the typo
        target = resolution.route
        if target in context.registry.routes:
            if target in trail:
                loop = " -> ".join([*trail, target])
                raise InvalidRequestError(
                    f"route cycle {loop}: a route may not reach itself; point one of them at a "
                    "model instead"
                )
            inner = context.policy_of_route(target).select(context, (*trail, target))
            via = f"alias {self.name!r} -> route {target!r}" if target != self.name else ""
            return inner.prefixed(via) if via else inner
        entry = PlanEntry(deployment=target, included=True, reason=resolution.reason)
        return Selection(entries=(entry,))


@attrs.frozen(kw_only=True)
class Chain:
    """A fallback chain: each step's deployments in turn, in order."""

    steps: tuple[RoutePolicy, ...] = attrs.field(converter=_policies)

    @steps.validator
    def _not_empty(
        self, _: attrs.Attribute[tuple[RoutePolicy, ...]], value: tuple[object, ...]
    ) -> None:
        if not value:
            raise ArgumentError("Chain needs at least one step (a name or a policy)")

    def select(self, context: Context, trail: tuple[str, ...]) -> Selection:
        count = len(self.steps)
        return _merge(
            step.select(context, trail).prefixed(f"fallback {index}/{count}")
            for index, step in enumerate(self.steps, start=1)
        )


def describe_condition(when: Condition) -> str:
    parts: list[str] = []
    if when.min_input_tokens is not None:
        parts.append(f"input >= {when.min_input_tokens} tokens")
    if when.max_input_tokens is not None:
        parts.append(f"input <= {when.max_input_tokens} tokens")
    if when.max_output_tokens is not None:
        parts.append(f"max_tokens <= {when.max_output_tokens}")
    if when.capabilities:
        parts.append("needs " + ", ".join(sorted(when.capabilities)))
    parts.extend(f"tag {name}={value}" for name, value in sorted(when.tags.items()))
    return " and ".join(parts) or "always"


def matches(when: Condition, context: Context) -> bool:
    """Whether every part of ``when`` holds for the call. The prompt is only counted when a
    token bound is set and every cheaper part already holds."""
    if not when.capabilities <= context.needs.keys():
        return False
    tags = context.features.tags
    if any(tags.get(name) != value for name, value in when.tags.items()):
        return False
    if when.max_output_tokens is not None:
        asked = context.request.max_tokens
        if asked is None or asked > when.max_output_tokens:
            return False
    if when.max_input_tokens is not None and context.input_tokens() > when.max_input_tokens:
        return False
    return not (
        when.min_input_tokens is not None and context.input_tokens() < when.min_input_tokens
    )


@attrs.frozen(kw_only=True)
class Rule:
    """When ``when`` holds, the call goes to ``use``."""

    when: Condition = attrs.field(factory=Condition)
    use: RoutePolicy = attrs.field(converter=as_policy)


@attrs.frozen(kw_only=True)
class Rules:
    """The first rule whose condition holds decides; with none, ``otherwise`` does (None: the
    call cannot be routed, and that is an error naming the rules)."""

    rules: tuple[Rule, ...] = attrs.field(converter=_rules)
    otherwise: RoutePolicy | None = attrs.field(default=None, converter=_optional_policy)

    def select(self, context: Context, trail: tuple[str, ...]) -> Selection:
        for index, rule in enumerate(self.rules, start=1):
            if matches(rule.when, context):
                why = f"rule {index} ({describe_condition(rule.when)}) matched"
                return rule.use.select(context, trail).prefixed(why)
        if self.otherwise is None:
            tried = "; ".join(describe_condition(r.when) for r in self.rules)
            raise InvalidRequestError(
                f"no routing rule matched this call (rules: {tried}) and there is no default: "
                "add a fallback to the route, or pass tags/limits a rule accepts"
            )
        return self.otherwise.select(context, trail).prefixed("no rule matched")


@attrs.frozen(kw_only=True)
class Cheapest:
    """``of``'s deployments, cheapest worst-case cost first; those the request does not fit
    (input plus output over the context window) are left out."""

    of: RoutePolicy = attrs.field(converter=as_policy)

    def select(self, context: Context, trail: tuple[str, ...]) -> Selection:
        chosen = self.of.select(context, trail)
        ranked: list[tuple[float, int, PlanEntry]] = []
        others: list[PlanEntry] = []
        for order, entry in enumerate(chosen.entries):
            if not entry.included:
                others.append(entry)
                continue
            estimate = context.estimate(context.registry.deployment(entry.deployment))
            if not estimate.fits_context:
                reason = (
                    f"does not fit: {estimate.input_tokens} input + "
                    f"{estimate.max_output_tokens} output tokens over its context window"
                )
                others.append(_entry(entry, reason, included=False))
                continue
            ranked.append((estimate.cost_usd_max, order, entry))
        ranked.sort(key=lambda item: (item[0], item[1]))
        entries = [
            _entry(entry, f"cheapest #{rank} (worst case ${cost:.6f}): {entry.reason}")
            for rank, (cost, _, entry) in enumerate(ranked, start=1)
        ]
        return _with(chosen, entries=(*entries, *others))


@attrs.frozen(kw_only=True)
class Fastest:
    """``of``'s deployments, lowest recent average latency first; those with no recent
    latency follow, in ``of``'s order. A deployment is measured whenever it answers: as a
    fallback, or when a call's ``Policy.allowed_deployments`` or a split sends it traffic.

    Ordering by what was measured alone never measures the rest: a deployment with no latency
    would never be tried first, nor a slower one re-measured after it got faster. So a call
    that draws from the engine's random source explores (the epsilon-greedy rule of bandit
    routing: a share, not "an unmeasured deployment first", since one that only fails is never
    measured and would otherwise take every call's first attempt): with probability
    ``explore`` it goes first to a deployment with no latency yet, and with probability
    ``refresh`` to a measured one that is not the fastest, so its average stays current. A
    plan made without a random source (an estimate) does not explore.
    """

    of: RoutePolicy = attrs.field(converter=as_policy)
    explore: float = attrs.field(default=defaults.FASTEST_EXPLORE_SHARE, validator=_share)
    refresh: float = attrs.field(default=defaults.FASTEST_REFRESH_SHARE, validator=_share)

    def select(self, context: Context, trail: tuple[str, ...]) -> Selection:
        chosen = self.of.select(context, trail)
        known: list[tuple[float, int, PlanEntry]] = []
        unknown: list[PlanEntry] = []
        others: list[PlanEntry] = []
        for order, entry in enumerate(chosen.entries):
            latency = context.latencies.get(entry.deployment)
            if not entry.included:
                others.append(entry)
            elif latency is None:
                reason = f"no recent latency, after those with one: {entry.reason}"
                unknown.append(_entry(entry, reason))
            else:
                known.append((latency, order, entry))
        known.sort(key=lambda item: (item[0], item[1]))
        fast = [
            _entry(entry, f"recent average {latency:.3f} s: {entry.reason}")
            for latency, _, entry in known
        ]
        ranked = [*fast, *unknown]
        # Unmeasured deployments that would not come first anyway, and measured slower ones.
        unmeasured = [e for e in unknown if e is not ranked[0]]
        slower = fast[1:]
        if unmeasured or slower:
            draw = context.explore_draw()
            if draw is not None:
                ranked = self._explored(ranked, unmeasured, slower, draw)
        return _with(chosen, entries=(*ranked, *others))

    def _explored(
        self,
        ranked: list[PlanEntry],
        unmeasured: list[PlanEntry],
        slower: list[PlanEntry],
        draw: float,
    ) -> list[PlanEntry]:
        """``ranked`` with one deployment moved first when ``draw`` falls in a share."""
        if unmeasured and draw < self.explore:
            pick = unmeasured[int(draw / self.explore * len(unmeasured))]
            why = f"exploring, first in {self.explore:.0%} of calls: it has no latency yet"
        elif slower and 0 <= draw - self.explore < self.refresh:
            pick = slower[int((draw - self.explore) / self.refresh * len(slower))]
            why = f"re-measuring, first in {self.refresh:.0%} of calls: not the fastest"
        else:
            return ranked
        first = _entry(pick, f"{why}; {pick.reason}")
        return [first, *(entry for entry in ranked if entry is not pick)]


@attrs.frozen(kw_only=True)
class Arm:
    """One arm of a split: ``weight`` (> 0, relative to the others) and where it goes."""

    use: RoutePolicy = attrs.field(converter=as_policy)
    weight: float = attrs.field(converter=float)
    label: str = ""

    @weight.validator
    def _positive(self, _: attrs.Attribute[float], value: float) -> None:
        if not value > 0:
            raise ArgumentError(f"a split arm's weight must be > 0, got {value!r}")

    @property
    def title(self) -> str:
        if self.label:
            return self.label
        return self.use.name if isinstance(self.use, Use) else repr(self.use)


@attrs.frozen(kw_only=True)
class Split:
    """A weighted split for A/B tests. A call with a key always gets the same arm (sha256 of
    ``name`` and the key, so it holds across processes and restarts); one without a key
    uses the random draw, and with neither the heaviest arm. ``spill``: the other arms follow
    the assigned one as fallbacks (False: they are left out, so an arm's failures stay its own).
    """

    name: str
    arms: tuple[Arm, ...] = attrs.field(converter=_arms)
    spill: bool = True

    @arms.validator
    def _not_empty(self, _: attrs.Attribute[tuple[Arm, ...]], value: tuple[Arm, ...]) -> None:
        if not value:
            raise ArgumentError(f"split {self.name!r} needs at least one arm")

    def assign(
        self, key: str | None, draw: float | None, arm: str | None = None
    ) -> tuple[int, str]:
        """The index of the arm for a call, and how it was chosen. ``arm`` (a label or the
        name an arm uses) overrides the key and the draw when this split has that arm."""
        for index, candidate in enumerate(self.arms):
            if arm is not None and arm == candidate.title:
                return index, "assigned by the call's Policy.split_arm"
        weights = [arm.weight for arm in self.arms]
        if key is not None:
            point = position(self.name, key)
            return pick_weighted(weights, point), f"sticky by key (position {point:.4f})"
        if draw is not None:
            return pick_weighted(weights, draw), f"random draw {draw:.4f}"
        heaviest = max(range(len(weights)), key=lambda i: (weights[i], -i))
        return heaviest, "no key and no random draw: the heaviest arm"

    def select(self, context: Context, trail: tuple[str, ...]) -> Selection:
        features = context.features
        forced = features.arm is not None and any(a.title == features.arm for a in self.arms)
        context.splits_seen.append(self)
        if forced:
            context.arm_found = True
        draw = None if features.key is not None or forced else context.draw()
        index, how = self.assign(features.key, draw, features.arm if forced else None)
        total = sum(arm.weight for arm in self.arms)
        chosen = self.arms[index]
        context.assigned.append((self.name, chosen.title))
        parts = [
            chosen.use.select(context, trail).prefixed(
                f"split {self.name!r} arm {chosen.title!r} ({chosen.weight:g}/{total:g}, {how})"
            )
        ]
        for other in self.arms:
            if other is chosen:
                continue
            selection = other.use.select(context, trail)
            if self.spill:
                parts.append(selection.prefixed(f"other arm {other.title!r}, as a fallback"))
            else:
                why = f"split arm {other.title!r} not assigned"
                left_out = tuple(
                    _entry(e, why, included=False) for e in selection.entries if e.included
                )
                parts.append(Selection(entries=left_out))
        merged = _merge(parts)
        return Selection(
            entries=merged.entries, escalation=parts[0].escalation, shadow=parts[0].shadow
        )


@attrs.frozen(kw_only=True)
class Escalate:
    """Try ``first``; when its answer fails, is cut at its token limit or is rejected by the
    caller's validator (``on``), the engine moves on to ``to``. ``to`` is held out of the plan."""

    first: RoutePolicy = attrs.field(converter=as_policy)
    to: RoutePolicy = attrs.field(converter=as_policy)
    on: frozenset[str] = attrs.field(
        default=frozenset({"error", "length", "invalid"}), converter=_triggers
    )

    def select(self, context: Context, trail: tuple[str, ...]) -> Selection:
        first = self.first.select(context, trail)
        target = self.to.select(context, trail)
        on = ", ".join(sorted(self.on))
        held = tuple(
            _entry(e, f"held for escalation (on {on}): {e.reason}", included=False)
            for e in target.entries
            if e.included and e.deployment not in first.included()
        )
        registry = context.registry
        escalation = Escalation(
            deployments=tuple(registry.deployment(name) for name in target.included()),
            on=self.on,
            reason=f"escalates to {', '.join(target.included())}",
        )
        return Selection(
            entries=(*first.entries, *held), escalation=escalation, shadow=first.shadow
        )


@attrs.frozen(kw_only=True)
class Shadowed:
    """``of``'s plan, plus a background copy of ``sample`` of the calls to ``deployment``
    (a model or an alias of one), at most ``max_in_flight`` at once."""

    of: RoutePolicy = attrs.field(converter=as_policy)
    deployment: str
    sample: float
    max_in_flight: int
    route: str

    def select(self, context: Context, trail: tuple[str, ...]) -> Selection:
        chosen = self.of.select(context, trail)
        candidate = context.registry.resolve(self.deployment).deployments[0]
        shadow = ShadowPlan(
            route=self.route,
            deployment=candidate,
            sample=self.sample,
            max_in_flight=self.max_in_flight,
        )
        return Selection(entries=chosen.entries, escalation=chosen.escalation, shadow=shadow)
