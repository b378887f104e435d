"""Reading a ``[routes.NAME]`` table: its strategy, rules, split, escalation and shadow.

Only the table itself is checked here (types, ranges, unknown keys with did-you-mean);
whether the names it mentions exist, and whether routes reach each other in a cycle, is for
``_load``, which sees every table.
"""

from __future__ import annotations

import math
from typing import Any

from guardedllm.registry._check import (
    Field,
    Problems,
    Table,
    check_positive,
    check_seconds,
    did_you_mean,
    dotted,
    read_fields,
)
from guardedllm.registry._model import (
    CAPABILITIES,
    ESCALATION_TRIGGERS,
    ROUTE_STRATEGIES,
    SHADOW_MAX_IN_FLIGHT,
    Condition,
    Route,
    RouteRule,
    ShadowSetting,
)

__all__ = ["ROUTE_FIELDS", "read_route"]

ROUTE_FIELDS = {
    "fallback": Field(type="str_list"),
    "strategy": Field(type="str"),
    "rules": Field(type="table_list"),
    "split": Field(type="table"),
    "escalate_to": Field(type="str"),
    "escalate_on": Field(type="str_list"),
    "shadow": Field(type="table"),
    "deadline_s": Field(type="number"),
    "max_cost_usd": Field(type="number"),
    "max_attempts": Field(type="int"),
}

RULE_FIELDS = {
    "when": Field(type="table"),
    "use": Field(
        type="str", required=True, hint='add use = "NAME", the model, alias or route to call'
    ),
}

CONDITION_FIELDS = {
    "max_input_tokens": Field(type="int"),
    "min_input_tokens": Field(type="int"),
    "max_output_tokens": Field(type="int"),
    "capabilities": Field(type="str_list"),
    "tags": Field(type="str_table"),
}

SHADOW_FIELDS = {
    "deployment": Field(
        type="str", required=True, hint='add deployment = "NAME", the candidate model'
    ),
    "sample": Field(
        type="number", required=True, hint="add sample = 0.05, the fraction of calls to copy"
    ),
    "max_in_flight": Field(type="int"),
}

_STRATEGIES = ", ".join(sorted(ROUTE_STRATEGIES))


def _read_condition(value: dict[str, Any], key: str, mine: Problems) -> Condition | None:
    table = Table(key=key, values=value)
    problems = Problems()
    read = read_fields(table, CONDITION_FIELDS, "rule's when", problems)
    for name in ("max_input_tokens", "max_output_tokens"):
        check_positive(read, table, [name], "a count of tokens", problems)
    low = read.get("min_input_tokens")
    if low is not None and low < 0:
        problems.add(table.key_of("min_input_tokens"), f"must be >= 0, got {low}")
    high = read.get("max_input_tokens")
    if low is not None and high is not None and low > high:
        problems.add(
            table.key_of("min_input_tokens"),
            f"is above max_input_tokens ({high}), so the rule never matches: swap or fix them",
        )
    for capability in read.get("capabilities", ()):
        if capability not in CAPABILITIES:
            problems.add(
                table.key_of("capabilities"),
                f"unknown capability{did_you_mean(capability, CAPABILITIES)}: "
                f"use only {', '.join(sorted(CAPABILITIES))}",
            )
    mine.extend(problems)
    return None if problems else Condition(**read)


def _read_rules(rules: list[dict[str, Any]], key: str, mine: Problems) -> tuple[RouteRule, ...]:
    read_rules: list[RouteRule] = []
    for index, value in enumerate(rules):
        table = Table(key=f"{key}[{index}]", values=value)
        problems = Problems()
        read = read_fields(table, RULE_FIELDS, "rule", problems)
        when = _read_condition(read.get("when", {}), table.key_of("when"), problems)
        mine.extend(problems)
        if not problems and when is not None:
            read_rules.append(RouteRule(when=when, use=read["use"]))
    return tuple(read_rules)


def _read_split(split: dict[str, Any], key: str, mine: Problems) -> tuple[tuple[str, float], ...]:
    arms: list[tuple[str, float]] = []
    for name, weight in split.items():
        arm_key = dotted(key, name)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            mine.add(arm_key, 'must be a weight (a number), like { "gpt-4o-mini" = 90 }')
        elif not (weight > 0 and math.isfinite(weight)):
            mine.add(arm_key, f"must be a weight > 0, got {weight:g}: remove the arm instead")
        else:
            arms.append((name, float(weight)))
    if not split:
        mine.add(key, 'is empty: give arms and weights like { "model-a" = 90, "model-b" = 10 }')
    return tuple(arms)


def _read_shadow(value: dict[str, Any], key: str, mine: Problems) -> ShadowSetting | None:
    table = Table(key=key, values=value)
    problems = Problems()
    read = read_fields(table, SHADOW_FIELDS, "shadow", problems)
    sample = read.get("sample")
    if sample is not None and not 0 < sample <= 1:
        problems.add(
            table.key_of("sample"),
            f"must be a fraction of calls, 0 < sample <= 1, got {sample:g}",
        )
    check_positive(read, table, ["max_in_flight"], "shadow copies running at once", problems)
    mine.extend(problems)
    if problems:
        return None
    return ShadowSetting(
        deployment=read["deployment"],
        sample=read["sample"],
        max_in_flight=read.get("max_in_flight", SHADOW_MAX_IN_FLIGHT),
    )


def read_route(name: str, table: Table, problems: Problems) -> Route | None:
    """A route whose names are still as written; ``_load`` checks and resolves them."""
    mine = Problems()
    read = read_fields(table, ROUTE_FIELDS, "route", mine)
    strategy = read.get("strategy")
    has_split = "split" in table.values
    if strategy is not None and strategy not in ROUTE_STRATEGIES:
        mine.add(
            table.key_of("strategy"),
            f"unknown strategy{did_you_mean(strategy, ROUTE_STRATEGIES)}: use one of {_STRATEGIES}",
        )
    elif strategy == "split" and not has_split:
        mine.add(
            dotted(table.key, "split"),
            'missing; strategy "split" needs it: add split = { "model-a" = 90, "model-b" = 10 }',
        )
    elif has_split and strategy not in (None, "split"):
        mine.add(
            table.key_of("split"),
            f'only strategy "split" takes it (this route is {strategy!r}): remove one of them',
        )
    if "fallback" not in table.values and not has_split:
        mine.add(
            dotted(table.key, "fallback"),
            'missing; every route needs it (or a split): add fallback = ["model-a", "model-b"], '
            "the deployments to try in order",
        )
    if read.get("fallback") == ():
        mine.add(
            table.key_of("fallback"),
            "is empty: list at least one model or alias to call, in order",
        )
    rules = _read_rules(read.get("rules", []), table.key_of("rules"), mine)
    split = _read_split(read["split"], table.key_of("split"), mine) if "split" in read else ()
    shadow = (
        _read_shadow(read["shadow"], table.key_of("shadow"), mine) if "shadow" in read else None
    )
    for trigger in read.get("escalate_on", ()):
        if trigger not in ESCALATION_TRIGGERS:
            mine.add(
                table.key_of("escalate_on"),
                f"unknown trigger {trigger!r}{did_you_mean(trigger, ESCALATION_TRIGGERS)}: "
                f"use some of {', '.join(sorted(ESCALATION_TRIGGERS))}",
            )
    if "escalate_on" in read and "escalate_to" not in table.values:
        mine.add(
            table.key_of("escalate_on"), "needs escalate_to, the model or route to escalate to"
        )
    check_seconds(
        read, table, ["deadline_s"], "seconds the whole call may take, or remove it", mine
    )
    check_positive(
        read, table, ["max_cost_usd"], "the most one call may cost in USD, or remove it", mine
    )
    check_positive(read, table, ["max_attempts"], "attempts per deployment, at least 1", mine)
    problems.extend(mine)
    if mine:
        return None
    settings: dict[str, Any] = {
        k: read[k] for k in ("deadline_s", "max_cost_usd", "max_attempts") if k in read
    }
    if "escalate_on" in read:
        settings["escalate_on"] = frozenset(read["escalate_on"])
    return Route(
        name=name,
        fallback=read.get("fallback", ()),
        strategy=strategy or ("split" if has_split else "fallback"),
        rules=rules,
        split=split,
        escalate_to=read.get("escalate_to"),
        shadow=shadow,
        **settings,
    )
