"""Turning a name application code uses into an ordered plan of deployments.

Three kinds of names are callable: a model's own name (a plan of one), a route's name (every
deployment it may call: its fallback, then what its rules, split and escalation reach; the
order a call actually uses is decided per call by guardedllm.routing), and an alias, which
names a model, a route or another alias. Alias chains are
followed to their end; the loader has already refused cycles and dangling targets, so over a
loaded registry every chain ends at a model or a route.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from guardedllm.errors import ArgumentError
from guardedllm.registry._model import Deployment, Route

__all__ = ["Resolution", "follow_aliases", "resolve_all"]


@attrs.frozen(kw_only=True)
class Resolution:
    """What a requested name means: the ordered deployments to try and why.

    ``route`` is the route or model name the request landed on after following aliases;
    ``reason`` says how, e.g. ``alias 'chat' -> model 'gpt-4o-mini'``. The guard settings
    come from the route and are None when it leaves them (or when no route was involved).
    """

    requested: str
    route: str
    deployments: tuple[Deployment, ...]
    reason: str
    deadline_s: float | None = None
    max_cost_usd: float | None = None
    max_attempts: int | None = None


def follow_aliases(name: str, aliases: Mapping[str, str]) -> tuple[list[str], bool]:
    """The names visited from ``name`` until one is not an alias, and whether the walk came
    back to a name it had seen (a cycle; the list then ends with the repeated name)."""
    chain = [name]
    while chain[-1] in aliases:
        target = aliases[chain[-1]]
        if target in chain:
            return [*chain, target], True
        chain.append(target)
    return chain, False


def _of_model(name: str, deployment: Deployment) -> Resolution:
    return Resolution(
        requested=name, route=name, deployments=(deployment,), reason=f"model {name!r}"
    )


def _describe(route: Route) -> str:
    """How a route picks, for ``Resolution.reason``: exactly today's text for a plain
    fallback route; the other parts each add a clause."""
    if route.strategy == "split":
        parts = ["split " + ", ".join(f"{arm} {weight:g}" for arm, weight in route.split)]
    elif route.strategy == "fallback":
        parts = [f"fallback {', '.join(route.fallback)}"]
    else:
        parts = [f"{route.strategy} of {', '.join(route.fallback)}"]
    if route.rules:
        parts.append(f"{len(route.rules)} rule(s) first")
    if route.escalate_to is not None:
        parts.append(f"escalates to {route.escalate_to}")
    if route.shadow is not None:
        parts.append(f"shadowed by {route.shadow.deployment}")
    return "; ".join(parts)


def _reachable(
    name: str,
    models: Mapping[str, Deployment],
    aliases: Mapping[str, str],
    routes: Mapping[str, Route],
    trail: tuple[str, ...],
) -> list[str]:
    """Every deployment route ``name`` may call, in order: its fallback, then what its rules,
    split arms and ``escalate_to`` reach. The shadow is left out: it never serves a caller."""
    route = routes[name]
    found: dict[str, None] = dict.fromkeys(route.fallback)
    for target in (
        (rule.use for rule in route.rules),
        (arm for arm, _ in route.split),
        ([route.escalate_to] if route.escalate_to else []),
    ):
        for written in target:
            chain, cyclic = follow_aliases(written, aliases)
            end = chain[-1]
            if cyclic or (end not in models and end not in routes):
                raise ArgumentError(f"route {name!r} names {written!r}, which does not resolve")
            if end in models:
                found.setdefault(end)
            elif end in trail:
                raise ArgumentError(f"route cycle {' -> '.join([*trail, end])}")
            else:
                found.update(dict.fromkeys(_reachable(end, models, aliases, routes, (*trail, end))))
    return list(found)


def deployments_of(
    name: str,
    models: Mapping[str, Deployment],
    aliases: Mapping[str, str],
    routes: Mapping[str, Route],
) -> list[str]:
    """Every deployment a model, alias or route name may call (ValueError: it does not
    resolve, or routes reach each other in a cycle)."""
    chain, cyclic = follow_aliases(name, aliases)
    end = chain[-1]
    if not cyclic and end in models:
        return [end]
    if cyclic or end not in routes:
        raise ArgumentError(f"{name!r} does not resolve")
    return _reachable(end, models, aliases, routes, (end,))


def _of_route(
    name: str,
    models: Mapping[str, Deployment],
    aliases: Mapping[str, str],
    routes: Mapping[str, Route],
) -> Resolution:
    route = routes[name]
    if route.shadow is not None:
        chain, cyclic = follow_aliases(route.shadow.deployment, aliases)
        if cyclic or chain[-1] not in models:
            raise ArgumentError(f"route {name!r} shadows {route.shadow.deployment!r}, not a model")
    return Resolution(
        requested=name,
        route=name,
        deployments=tuple(models[d] for d in _reachable(name, models, aliases, routes, (name,))),
        reason=f"route {name!r}: {_describe(route)}",
        deadline_s=route.deadline_s,
        max_cost_usd=route.max_cost_usd,
        max_attempts=route.max_attempts,
    )


def resolve_all(
    models: Mapping[str, Deployment], aliases: Mapping[str, str], routes: Mapping[str, Route]
) -> dict[str, Resolution]:
    """The resolution of every callable name.

    Raises ValueError when a name cannot resolve (an alias cycle or dangling target, a route
    naming an unknown deployment): only hand-built registries can get here with one.
    """
    resolved: dict[str, Resolution] = {name: _of_model(name, d) for name, d in models.items()}
    for name, route in routes.items():
        missing = [d for d in route.fallback if d not in models]
        if missing:
            raise ArgumentError(f"route {name!r} names unknown deployments {missing}")
        resolved[name] = _of_route(name, models, aliases, routes)
    for name in aliases:
        chain, cyclic = follow_aliases(name, aliases)
        end = chain[-1]
        if cyclic or end not in resolved:
            raise ArgumentError(f"alias {name!r} does not resolve: {' -> '.join(chain)}")
        via = " -> ".join(f"alias {a!r}" for a in chain[:-1])
        target = resolved[end]
        resolved[name] = attrs.evolve(
            target,
            requested=name,
            reason=f"{via} -> {target.reason}",
        )
    return resolved
