"""What ``guardedllm check`` warns about in routes: deployments a route lists but that a
typical call can never reach, because of the route's cost cap or a rule's capabilities.

A warning is not an error: the config loads and calls work, but part of a route is dead
weight, and the error a caller sees when the cap refuses its fallback is the first sign of it.

A *typical call* is a short prompt, one user message of about
``defaults.CHECK_TYPICAL_INPUT_TOKENS`` tokens, asking for ``defaults.CHECK_TYPICAL_MAX_TOKENS``
output tokens (capped by each deployment's ``max_output_tokens``), estimated as a call would be
(a stand-in tokenizer's safety margin included, no calibration yet).
"""

from __future__ import annotations

from guardedllm import defaults
from guardedllm.errors import ConfigProblem
from guardedllm.registry import Registry
from guardedllm.registry._check import dotted
from guardedllm.routing._plan import estimate_on
from guardedllm.types import ChatRequest

__all__ = ["route_warnings", "typical_request"]

# "word" after a space is one o200k_base and cl100k_base token: the prompt's count is the
# number of words plus its framing.
_WORD = " word"


def typical_request(model: str) -> ChatRequest:
    """The typical call to ``model`` that the warnings measure a route against."""
    text = "word" + _WORD * (defaults.CHECK_TYPICAL_INPUT_TOKENS - 8)  # 7 tokens of framing
    return ChatRequest(
        model=model,
        messages=({"role": "user", "content": text},),
        max_tokens=defaults.CHECK_TYPICAL_MAX_TOKENS,
    )


def route_warnings(registry: Registry) -> tuple[ConfigProblem, ...]:
    """Every warning about ``registry``'s routes, each with the key it concerns."""
    found: dict[ConfigProblem, None] = {}
    for name in sorted(registry.routes):
        for problem in (*_capped_out(registry, name), *_rules_skip(registry, name)):
            found.setdefault(problem)
    return tuple(found)


def _capped_out(registry: Registry, name: str) -> list[ConfigProblem]:
    """A deployment whose worst case for a typical call is over the route's ``max_cost_usd``
    is refused by the cap on every such call: it is listed but never used."""
    route = registry.routes[name]
    cap = route.max_cost_usd
    if cap is None:
        return []
    request = typical_request(name)
    problems = []
    for deployment in registry.resolve(name).deployments:
        estimate = estimate_on(registry, deployment, request)
        if estimate.cost_usd_max <= cap:
            continue
        problems.append(
            ConfigProblem(
                key=dotted("routes", name, "max_cost_usd"),
                message=(
                    f"{deployment.name!r} is never used by a typical call (about "
                    f"{estimate.input_tokens:,} input tokens, max_tokens "
                    f"{estimate.max_output_tokens:,}): its worst case there is "
                    f"${estimate.cost_usd_max:.6f}, over the route's cap of ${cap:g}, so the "
                    "cap refuses it on every such call; raise max_cost_usd, remove it from the "
                    "route, or make sure callers pass a smaller max_tokens"
                ),
            )
        )
    return problems


def _rules_skip(registry: Registry, name: str) -> list[ConfigProblem]:
    """A rule that matches only calls needing some capabilities never sends them to a
    deployment it reaches that lacks one (loading refuses a rule where none has them all)."""
    problems = []
    for index, rule in enumerate(registry.routes[name].rules):
        needed = rule.when.capabilities
        if not needed:
            continue
        for deployment in registry.resolve(rule.use).deployments:
            lacks = sorted(needed - deployment.capabilities)
            if not lacks:
                continue
            problems.append(
                ConfigProblem(
                    key=f"{dotted('routes', name, 'rules')}[{index}].use",
                    message=(
                        f"{deployment.name!r} is never used by this rule: every call it "
                        f"matches needs {sorted(needed)}, and {deployment.name!r} does not "
                        f"declare {lacks}; declare them in its [models.NAME] capabilities if "
                        "it has them, or send the rule to deployments that do"
                    ),
                )
            )
    return problems
