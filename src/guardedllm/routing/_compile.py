"""A ``[routes.NAME]`` table (a ``Route``) as the building blocks that evaluate it.

The layers, innermost first: the strategy over ``fallback`` (or the ``split``), then
``rules`` in front of it, then ``escalate_to`` around that, then ``shadow`` around all.
So a rule's target replaces the route's own plan but still escalates and is still shadowed.
"""

from __future__ import annotations

from functools import lru_cache

from guardedllm.errors import ArgumentError
from guardedllm.registry import Route
from guardedllm.routing._context import RoutePolicy
from guardedllm.routing._policies import (
    Arm,
    Chain,
    Cheapest,
    Escalate,
    Fastest,
    Rule,
    Rules,
    Shadowed,
    Split,
)

__all__ = ["policy_of"]


# Routes are frozen values, so a compiled policy can be shared by every call and registry.
@lru_cache(maxsize=1024)
def policy_of(route: Route) -> RoutePolicy:
    """The policy ``route`` describes."""
    policy: RoutePolicy | None
    if route.strategy == "split":
        policy = Split(
            name=route.name, arms=[Arm(use=name, weight=weight) for name, weight in route.split]
        )
    elif not route.fallback:
        policy = None
    elif route.strategy == "cheapest":
        policy = Cheapest(of=Chain(steps=route.fallback))
    elif route.strategy == "fastest":
        policy = Fastest(of=Chain(steps=route.fallback))
    else:
        policy = Chain(steps=route.fallback)
    if route.rules:
        policy = Rules(
            rules=[Rule(when=rule.when, use=rule.use) for rule in route.rules], otherwise=policy
        )
    if policy is None:
        raise ArgumentError(f"route {route.name!r} has neither a fallback, a split nor rules")
    if route.escalate_to is not None:
        policy = Escalate(first=policy, to=route.escalate_to, on=route.escalate_on)
    if route.shadow is not None:
        policy = Shadowed(
            of=policy,
            deployment=route.shadow.deployment,
            sample=route.shadow.sample,
            max_in_flight=route.shadow.max_in_flight,
            route=route.name,
        )
    return policy
