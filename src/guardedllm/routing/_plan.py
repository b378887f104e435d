"""The ordered plan of deployments for one call, and the per-deployment estimates behind it.

Pure: reads the registry, the request and what the caller passes in (features, observed
latencies, the time), never the network or a clock.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType

from guardedllm import defaults
from guardedllm.errors import InvalidRequestError, ModelNotFoundError, NoRouteError
from guardedllm.estimate import (
    ANTHROPIC_MEDIA_RATES,
    GEMINI_MEDIA_RATES,
    MEDIA_RATES_CEILING,
    OPENAI_MEDIA_RATES,
    Calibrator,
    Estimate,
    MediaTokenRates,
    Prices,
    TokenCount,
    cost_usd,
    count_chat_tokens,
    count_embedding_inputs,
    estimate_embedding,
    estimate_request,
    get_encoding,
)
from guardedllm.policy import Policy
from guardedllm.registry import Deployment, Registry, Resolution
from guardedllm.routing._compile import policy_of
from guardedllm.routing._context import Context, RoutePolicy, Selection
from guardedllm.routing._decisions import Escalation, ShadowPlan
from guardedllm.routing._features import RouteFeatures, needed_capabilities
from guardedllm.routing._policies import Chain, Use
from guardedllm.types import ChatRequest, PlanEntry, Usage

__all__ = ["Plan", "estimate_on", "plan_route", "usage_cost"]

# Rules on input tokens compare one count whatever deployment serves the call; o200k_base is
# the encoding of current OpenAI models and a fair stand-in for the others.
RULE_TOKENIZER = "o200k_base"

_NO_LATENCIES: Mapping[str, float] = MappingProxyType({})

# Provider kinds whose models use tiktoken's encodings, so that a count is exact. Any other
# vendor's count is an estimate from a stand-in tokenizer, with a safety margin.
EXACT_TOKENIZER_KINDS = frozenset({"openai", "azure-openai"})

# The rates at which each provider kind's vendor counts audio, video and PDF pages; any other
# kind (an OpenAI-compatible server, whatever model it runs) gets the largest of them.
MEDIA_RATES_BY_KIND: Mapping[str, MediaTokenRates] = MappingProxyType(
    {
        "openai": OPENAI_MEDIA_RATES,
        "azure-openai": OPENAI_MEDIA_RATES,
        "anthropic": ANTHROPIC_MEDIA_RATES,
        "gemini": GEMINI_MEDIA_RATES,
    }
)


# Gemini's embeddings answers carry no usage: the answer's usage, its cost and the spend
# settled are this estimate's.
GEMINI_EMBEDDING_USAGE_NOTE = (
    "Gemini reports no usage for embeddings: the answer's usage and cost are this estimate"
)


class TokenCounts:
    """A request's prompt counted once per tokenizer (and vendor's media rates): the
    deployments of a route mostly share one, and rules, estimates and the plan all ask."""

    def __init__(self, request: ChatRequest) -> None:
        self._request = request
        self._counts: dict[tuple[str, MediaTokenRates], TokenCount] = {}
        self._items: dict[str, tuple[int, ...]] = {}

    def items(self, tokenizer: str) -> tuple[int, ...]:
        """An embeddings call's inputs, each counted with ``tokenizer`` (empty for a chat
        call): what its estimate and its batch limits are worked out from."""
        embedding = self._request.embedding
        if embedding is None:
            return ()
        found = self._items.get(tokenizer)
        if found is None:
            found = self._items[tokenizer] = count_embedding_inputs(
                embedding.inputs, tokenizer=tokenizer
            )
        return found

    def of(self, tokenizer: str, media: MediaTokenRates = MEDIA_RATES_CEILING) -> TokenCount:
        found = self._counts.get((tokenizer, media))
        if found is None and self._request.embedding is not None:
            found = self._counts[tokenizer, media] = TokenCount(
                tokens=sum(self.items(tokenizer)), exact=True
            )
        if found is None:
            request = self._request
            found = self._counts[tokenizer, media] = count_chat_tokens(
                request.messages,
                encoding=get_encoding(tokenizer),
                tools=request.tools,
                media_rates=media,
            )
        return found

    def counted(self) -> dict[str, TokenCount]:
        """The counts made so far, by tokenizer (one per tokenizer: media rates change only
        what a media part counts for, not the text's tokens)."""
        found: dict[str, TokenCount] = {}
        for (tokenizer, _), count in tuple(self._counts.items()):
            found.setdefault(tokenizer, count)
        return found


class Plan:
    """Which deployments a call tries, in order, and why. Estimates are computed on demand
    and kept, since most calls only ever need the first deployment's."""

    def __init__(
        self,
        *,
        registry: Registry,
        request: ChatRequest,
        requested: str,
        route: str,
        reason: str,
        deployments: tuple[Deployment, ...],
        deadline_s: float | None,
        max_attempts: int | None,
        max_cost_usd: float | None,
        calibrator: Calibrator | None = None,
        explanation: tuple[PlanEntry, ...] = (),
        escalation: Escalation | None = None,
        shadow: ShadowPlan | None = None,
        counts: TokenCounts | None = None,
        split: tuple[str, str] | None = None,
    ) -> None:
        self.registry = registry
        # The first split on the call's way and the arm it assigned: (split, arm title).
        self.split = split
        # Each deployment considered, in the plan or not, with why (one line per deployment
        # saying ``reason`` when none is given).
        self.explanation = explanation or _included(tuple(d.name for d in deployments), reason)
        self.escalation = escalation
        self.shadow = shadow
        self.calibrator = calibrator
        self.request = request
        self.requested = requested
        self.route = route
        self.reason = reason
        self.deployments = deployments
        self.deadline_s = deadline_s
        self.max_attempts = max_attempts
        self.max_cost_usd = max_cost_usd
        self._estimates: dict[str, Estimate] = {}
        self.counts = counts if counts is not None else TokenCounts(request)

    def estimate(self, deployment: Deployment) -> Estimate:
        found = self._estimates.get(deployment.name)
        if found is None:
            factor = self.calibrator.factor(deployment.name) if self.calibrator else 1.0
            found = self._estimates[deployment.name] = estimate_on(
                self.registry, deployment, self.request, calibration=factor, counts=self.counts
            )
        return found

    def remember(self, estimate: Estimate) -> None:
        """Keep a better estimate (a vendor's exact count) for the rest of the call."""
        self._estimates[estimate.deployment] = estimate


@functools.lru_cache(maxsize=1024)
def _included(names: tuple[str, ...], reason: str) -> tuple[PlanEntry, ...]:
    """Each of ``names`` in the plan for ``reason``: the same few values on every call."""
    return tuple(PlanEntry(deployment=name, included=True, reason=reason) for name in names)


def plan_route(
    registry: Registry,
    request: ChatRequest,
    policy: Policy,
    *,
    calibrator: Calibrator | None = None,
    features: RouteFeatures | None = None,
    latencies: Mapping[str, float] | None = None,
    now: float | None = None,
    route_policy: RoutePolicy | None = None,
    random: Callable[[], float] | None = None,
) -> Plan:
    """The plan for ``request``: its route's policy evaluated for this call (or the policy's
    ``fallback`` override, or ``route_policy`` built in code), every deployment considered
    listed in ``Plan.explanation`` with why.

    Then two filters, applied to the plan and to the escalation target alike: deployments
    lacking a capability the request needs (images: "vision", tools: "tools", JSON output:
    "json") are left out, and so are those outside ``policy.allowed_deployments``. A call no
    deployment can serve raises ``NoRouteError`` naming what excluded each one.

    ``features`` are the caller's tags, sticky key, forced split arm and random draw;
    ``latencies`` maps a deployment to its recent average latency in seconds (for "fastest"
    routes); ``random`` is drawn from when a split needs a draw that ``features`` lacks.
    ``now`` is accepted for policies that depend on time; none does yet.
    """
    del now  # no building block reads the time yet; the parameter keeps the engine's call stable
    resolution = registry.resolve(request.model)
    if (
        resolution.route not in registry.routes
        and policy.fallback is None
        and route_policy is None
        and policy.allowed_deployments is None
    ):
        return _one_model(registry, request, resolution, calibrator)
    estimates: dict[str, Estimate] = {}
    counts = TokenCounts(request)

    def estimate(deployment: Deployment) -> Estimate:
        found = estimates.get(deployment.name)
        if found is None:
            factor = calibrator.factor(deployment.name) if calibrator else 1.0
            found = estimates[deployment.name] = estimate_on(
                registry, deployment, request, calibration=factor, counts=counts
            )
        return found

    def count_tokens() -> int:
        count = counts.of(RULE_TOKENIZER)
        if count.fills_window:
            # A part no one can count (a file_id) may fill any window: as large as the
            # largest, so a rule for short prompts does not take it for one.
            return max(count.tokens, *(d.context_window for d in registry.models.values()))
        return count.tokens

    def route_policy_of(name: str) -> RoutePolicy:
        return policy_of(registry.routes[name])

    context = Context(
        registry=registry,
        request=request,
        features=features or RouteFeatures(),
        latencies=latencies if latencies is not None else _NO_LATENCIES,
        estimate=estimate,
        count_tokens=count_tokens,
        policy_of_route=route_policy_of,
        random=random,
    )
    chosen: RoutePolicy
    if policy.fallback is not None:
        if not policy.fallback:
            raise ModelNotFoundError(
                "Policy.fallback named no deployment; give at least one model or alias name."
            )
        chosen = Chain(steps=policy.fallback)
    elif route_policy is not None:
        chosen = route_policy
    else:
        chosen = Use(name=request.model)
    selection = chosen.select(context, ())
    arm = context.features.arm
    if arm is not None and context.splits_seen and not context.arm_found:
        # A call that meets no split has nothing to assign (a scope's split_arm may cover
        # calls to plain models too); one that meets splits must name an arm of one of them.
        arms = "; ".join(
            f"split {split.name!r}: " + ", ".join(repr(a.title) for a in split.arms)
            for split in context.splits_seen
        )
        raise InvalidRequestError(
            f"Policy.split_arm={arm!r} names no arm of the splits on this call's way "
            f"({arms}); give one of those arms, or leave split_arm out"
        )
    selection = _check_capabilities(selection, context)
    if policy.allowed_deployments is not None:
        selection = _check_allowed(selection, registry, policy.allowed_deployments)
    included = selection.included()
    if not included:
        selection = _promote_escalation(selection)
        included = selection.included()
    if not included:
        raise NoRouteError(
            _no_route_message(request.model, selection),
            excluded=[(e.deployment, e.reason) for e in selection.entries],
        )
    override = ""
    if policy.fallback is not None:
        override = f"; policy fallback override: {', '.join(included)}"
    elif route_policy is not None:
        override = "; policy given in code"
    plan = _plan_for(
        registry,
        request,
        resolution,
        calibrator,
        reason=resolution.reason + override,
        deployments=tuple(registry.deployment(name) for name in included),
        selection=selection,
        counts=counts,
        split=context.assigned[0] if context.assigned else None,
    )
    for found in estimates.values():
        plan.remember(found)
    return plan


def _one_model(
    registry: Registry, request: ChatRequest, resolution: Resolution, calibrator: Calibrator | None
) -> Plan:
    """The plan for a name that is one model (directly or by alias), with no override: the
    policies would only say "use it", so this is the common case made short."""
    (deployment,) = resolution.deployments
    why = _lacking(deployment, needed_capabilities(request))
    if why is not None:
        entry = PlanEntry(deployment=deployment.name, included=False, reason=why)
        raise NoRouteError(
            _no_route_message(request.model, Selection(entries=(entry,))),
            excluded=[(deployment.name, why)],
        )
    return _plan_for(
        registry,
        request,
        resolution,
        calibrator,
        reason=resolution.reason,
        deployments=resolution.deployments,
    )


def _plan_for(
    registry: Registry,
    request: ChatRequest,
    resolution: Resolution,
    calibrator: Calibrator | None,
    *,
    reason: str,
    deployments: tuple[Deployment, ...],
    selection: Selection | None = None,
    counts: TokenCounts | None = None,
    split: tuple[str, str] | None = None,
) -> Plan:
    """A plan over ``deployments``, with the route's settings and ``selection``'s
    explanation, escalation and shadow (none: one line per deployment saying ``reason``)."""
    return Plan(
        registry=registry,
        request=request,
        requested=resolution.requested,
        route=resolution.route,
        reason=reason,
        deployments=deployments,
        deadline_s=resolution.deadline_s,
        max_attempts=resolution.max_attempts,
        max_cost_usd=resolution.max_cost_usd,
        calibrator=calibrator,
        explanation=selection.entries if selection is not None else (),
        escalation=selection.escalation if selection is not None else None,
        shadow=selection.shadow if selection is not None else None,
        counts=counts,
        split=split,
    )


def _lacking(deployment: Deployment, needs: Mapping[str, str]) -> str | None:
    """Why ``deployment`` cannot serve a request with ``needs``, or None when it can."""
    has = deployment.capabilities
    lacks = [capability for capability in needs if capability not in has]
    if not lacks:
        return None
    declared = ", ".join(sorted(has))
    why = "; ".join(f"needs {c!r} ({needs[c]})" for c in lacks)
    return f"excluded: {why}, but it declares only [{declared}]"


def _promote_escalation(selection: Selection) -> Selection:
    """When nothing in the plan can serve the call, the escalation target is the plan."""
    escalation = selection.escalation
    if escalation is None or not escalation.deployments:
        return selection
    targets = {d.name for d in escalation.deployments}
    promoted = "the escalation target, since nothing before it can serve this call"
    entries = tuple(
        PlanEntry(deployment=e.deployment, included=True, reason=f"{promoted}: {e.reason}")
        if e.deployment in targets and not e.included
        else e
        for e in selection.entries
    )
    return Selection(entries=entries, escalation=None, shadow=selection.shadow)


def _filtered(selection: Selection, excluded: Callable[[str], str | None]) -> Selection:
    """``selection`` with each deployment for which ``excluded`` gives a reason left out for
    that reason: those in the plan, those held for escalation, and the shadow candidate (a
    copy goes nowhere the call itself could not go)."""
    escalation = selection.escalation
    held = {d.name for d in escalation.deployments} if escalation is not None else set()
    entries: list[PlanEntry] = []
    for entry in selection.entries:
        considered = entry.included or entry.deployment in held
        why = excluded(entry.deployment) if considered else None
        if why is None:
            entries.append(entry)
        else:
            entries.append(PlanEntry(deployment=entry.deployment, included=False, reason=why))
    if escalation is not None:
        kept = tuple(d for d in escalation.deployments if excluded(d.name) is None)
        escalation = Escalation(deployments=kept, on=escalation.on, reason=escalation.reason)
    shadow = selection.shadow
    if shadow is not None:
        why = excluded(shadow.deployment.name)
        if why is not None:
            reason = f"shadow candidate, no copy sent: {why}"
            entries.append(
                PlanEntry(deployment=shadow.deployment.name, included=False, reason=reason)
            )
            shadow = None
    return Selection(entries=tuple(entries), escalation=escalation, shadow=shadow)


def _check_capabilities(selection: Selection, context: Context) -> Selection:
    """``selection`` without the deployments that lack a capability the request needs."""
    needs = context.needs
    if not needs:
        return selection
    registry = context.registry

    return _filtered(selection, lambda name: _lacking(registry.deployment(name), needs))


def _check_allowed(selection: Selection, registry: Registry, names: Sequence[str]) -> Selection:
    """``selection`` without the deployments outside the call's ``allowed_deployments``."""
    allowed: set[str] = set()
    for name in names:
        try:
            allowed.update(d.name for d in registry.resolve(name).deployments)
        except ModelNotFoundError as exc:
            raise ModelNotFoundError(f"Policy.allowed_deployments: {exc}") from None
    listed = ", ".join(names)

    def outside(name: str) -> str | None:
        if name in allowed:
            return None
        return f"excluded: not in the call's Policy.allowed_deployments [{listed}]"

    return _filtered(selection, outside)


def _no_route_message(requested: str, selection: Selection) -> str:
    excluded = "; ".join(f"{e.deployment}: {e.reason}" for e in selection.entries)
    return (
        f"no deployment can serve this call to {requested!r}: {excluded or 'none considered'}. "
        "Add a deployment with the needed capabilities to the route (and declare them in its "
        "[models.NAME] capabilities), widen the call's allowed deployments, or change the "
        "request."
    )


def prices_of(deployment: Deployment) -> Prices:
    """The deployment's prices, as one shared value per distinct set of prices (a call needs
    them twice: for the estimate and for the bill)."""
    return _prices(
        deployment.input_usd_per_mtok,
        deployment.output_usd_per_mtok,
        deployment.cached_input_usd_per_mtok,
        deployment.reasoning_usd_per_mtok,
    )


@functools.lru_cache(maxsize=1024)
def _prices(
    input_usd: float, output_usd: float, cached_usd: float | None, reasoning_usd: float | None
) -> Prices:
    return Prices(
        input_usd_per_mtok=input_usd,
        output_usd_per_mtok=output_usd,
        cached_input_usd_per_mtok=cached_usd,
        reasoning_usd_per_mtok=reasoning_usd,
    )


def estimate_on(
    registry: Registry,
    deployment: Deployment,
    request: ChatRequest,
    *,
    calibration: float = 1.0,
    counts: TokenCounts | None = None,
) -> Estimate:
    """The pre-flight estimate of ``request`` on ``deployment``. ``calibration`` scales the
    count of a stand-in tokenizer (it does not apply where the count is exact); ``counts``
    shares the prompt's count with other deployments of the same tokenizer."""
    kind = registry.provider_of(deployment).kind
    exact = kind in EXACT_TOKENIZER_KINDS
    if request.embedding is not None:
        items = (counts if counts is not None else TokenCounts(request)).items(deployment.tokenizer)
        return estimate_embedding(
            items,
            deployment_name=deployment.name,
            tokenizer=deployment.tokenizer,
            context_window=deployment.context_window,
            prices=prices_of(deployment),
            calibration=calibration,
            safety_margin=0.0 if exact else defaults.ESTIMATE_SAFETY_MARGIN,
            exact_tokenizer=exact,
            notes=(GEMINI_EMBEDDING_USAGE_NOTE,) if kind == "gemini" else (),
        )
    media = MEDIA_RATES_BY_KIND.get(kind, MEDIA_RATES_CEILING)
    return estimate_request(
        request.messages,
        tools=request.tools,
        max_tokens=request.max_tokens,
        deployment_name=deployment.name,
        tokenizer=deployment.tokenizer,
        context_window=deployment.context_window,
        max_output_tokens=deployment.max_output_tokens,
        prices=prices_of(deployment),
        calibration=calibration,
        safety_margin=0.0 if exact else defaults.ESTIMATE_SAFETY_MARGIN,
        exact_tokenizer=exact,
        media_rates=media,
        count=counts.of(deployment.tokenizer, media) if counts is not None else None,
    )


def usage_cost(deployment: Deployment, usage: Usage) -> float:
    """What ``usage`` cost on ``deployment``, priced from the registry.

    Cached tokens are a part of the prompt and reasoning tokens a part of the completion; a
    vendor report that breaks that is clamped, so an answered call is never failed over its
    bookkeeping.
    """
    return cost_usd(
        prices_of(deployment),
        input_tokens=usage.prompt_tokens,
        output_tokens=usage.completion_tokens,
        cached_input_tokens=min(usage.prompt_tokens_details.cached_tokens, usage.prompt_tokens),
        reasoning_tokens=min(
            usage.completion_tokens_details.reasoning_tokens, usage.completion_tokens
        ),
    )
