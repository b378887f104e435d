"""Routing: turn the name a caller uses (alias, route or model) into an ordered plan.

The building blocks (``Use``, ``Chain``, ``Rules``, ``Cheapest``, ``Fastest``, ``Split``,
``Escalate``, ``Shadowed``) are frozen values that compose; ``plan_route`` evaluates the
route's policy (compiled from its ``[routes.NAME]`` table, or given in code) for one call and
explains every deployment it considered. ``decide_escalation`` and ``sample_shadow`` are the
decisions taken after planning. Everything here is pure: no I/O, no clock, no randomness.
"""

from guardedllm.routing._compile import policy_of
from guardedllm.routing._context import Context, PlanEntry, RoutePolicy, Selection
from guardedllm.routing._decisions import (
    Escalation,
    EscalationVerdict,
    ShadowPlan,
    ShadowVerdict,
    decide_escalation,
    sample_shadow,
)
from guardedllm.routing._features import RouteFeatures, needed_capabilities
from guardedllm.routing._plan import Plan, estimate_on, plan_route, prices_of, usage_cost
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
    Use,
    matches,
)
from guardedllm.routing._sticky import pick_weighted, position
from guardedllm.routing._warnings import route_warnings, typical_request

__all__ = [
    "Arm",
    "Chain",
    "Cheapest",
    "Context",
    "Escalate",
    "Escalation",
    "EscalationVerdict",
    "Fastest",
    "Plan",
    "PlanEntry",
    "RouteFeatures",
    "RoutePolicy",
    "Rule",
    "Rules",
    "Selection",
    "ShadowPlan",
    "ShadowVerdict",
    "Shadowed",
    "Split",
    "Use",
    "decide_escalation",
    "estimate_on",
    "matches",
    "needed_capabilities",
    "pick_weighted",
    "plan_route",
    "policy_of",
    "position",
    "prices_of",
    "route_warnings",
    "sample_shadow",
    "typical_request",
    "usage_cost",
]
