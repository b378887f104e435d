"""The ordered plan of deployments for one call, and the per-deployment estimates behind it.

Pure: reads the registry and the request, never the network or a clock.
"""

from __future__ import annotations

from guardedllm import defaults
from guardedllm.errors import ModelNotFoundError
from guardedllm.estimate import Calibrator, Estimate, Prices, cost_usd, estimate_request
from guardedllm.policy import Policy
from guardedllm.registry import Deployment, Registry
from guardedllm.types import ChatRequest, Usage

__all__ = ["Plan", "estimate_on", "plan_route", "usage_cost"]

# Provider kinds whose models use tiktoken's encodings, so that a count is exact. Any other
# vendor's count is an estimate from a stand-in tokenizer, with a safety margin.
EXACT_TOKENIZER_KINDS = frozenset({"openai", "azure-openai"})


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
    ) -> None:
        self.registry = registry
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

    def estimate(self, deployment: Deployment) -> Estimate:
        found = self._estimates.get(deployment.name)
        if found is None:
            factor = self.calibrator.factor(deployment.name) if self.calibrator else 1.0
            found = self._estimates[deployment.name] = estimate_on(
                self.registry, deployment, self.request, calibration=factor
            )
        return found

    def remember(self, estimate: Estimate) -> None:
        """Keep a better estimate (a vendor's exact count) for the rest of the call."""
        self._estimates[estimate.deployment] = estimate


def plan_route(
    registry: Registry,
    request: ChatRequest,
    policy: Policy,
    *,
    calibrator: Calibrator | None = None,
) -> Plan:
    """The plan for ``request``: its route's fallback chain, or the policy's override."""
    resolution = registry.resolve(request.model)
    deployments = resolution.deployments
    reason = resolution.reason
    if policy.fallback is not None:
        chosen: list[Deployment] = []
        for name in policy.fallback:
            for deployment in registry.resolve(name).deployments:
                if deployment not in chosen:
                    chosen.append(deployment)
        if not chosen:
            raise ModelNotFoundError(
                "Policy.fallback named no deployment; give at least one model or alias name."
            )
        deployments = tuple(chosen)
        reason = f"{reason}; policy fallback override: {', '.join(d.name for d in chosen)}"
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
    )


def prices_of(deployment: Deployment) -> Prices:
    return Prices(
        input_usd_per_mtok=deployment.input_usd_per_mtok,
        output_usd_per_mtok=deployment.output_usd_per_mtok,
        cached_input_usd_per_mtok=deployment.cached_input_usd_per_mtok,
        reasoning_usd_per_mtok=deployment.reasoning_usd_per_mtok,
    )


def estimate_on(
    registry: Registry,
    deployment: Deployment,
    request: ChatRequest,
    *,
    calibration: float = 1.0,
) -> Estimate:
    """The pre-flight estimate of ``request`` on ``deployment``. ``calibration`` scales the
    count of a stand-in tokenizer (it does not apply where the count is exact)."""
    exact = registry.provider_of(deployment).kind in EXACT_TOKENIZER_KINDS
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
