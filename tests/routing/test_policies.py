"""Each routing building block, and compositions, evaluated through plan_route (pure)."""

from __future__ import annotations

import random
from typing import Any

import pytest
from tests.routing._registry import registry

from guardedllm.errors import InvalidRequestError, ModelNotFoundError, NoRouteError
from guardedllm.policy import Policy
from guardedllm.registry import Condition
from guardedllm.routing import (
    Arm,
    Chain,
    Cheapest,
    Escalate,
    Fastest,
    Plan,
    RouteFeatures,
    RoutePolicy,
    Rule,
    Rules,
    Shadowed,
    Split,
    Use,
    plan_route,
)
from guardedllm.types import ChatRequest

SHORT = ({"role": "user", "content": "Hi"},)
LONG = ({"role": "user", "content": "word " * 3000},)
IMAGE = (
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        ],
    },
)
FILE_BY_ID = ({"role": "user", "content": [{"type": "file", "file": {"file_id": "file-1"}}]},)
TOOLS = ({"type": "function", "function": {"name": "f", "parameters": {}}},)


def plan(
    policy: RoutePolicy | None = None,
    *,
    model: str = "support",
    messages: tuple[dict[str, Any], ...] = SHORT,
    features: RouteFeatures | None = None,
    latencies: dict[str, float] | None = None,
    **request: Any,
) -> Plan:
    return plan_route(
        registry(),
        ChatRequest(model=model, messages=messages, **request),
        Policy(),
        features=features or RouteFeatures(),
        latencies=latencies,
        now=0.0,
        route_policy=policy,
    )


def names(result: Plan) -> list[str]:
    return [d.name for d in result.deployments]


def test_a_config_route_is_its_fallback_chain_with_reasons() -> None:
    result = plan()
    assert names(result) == ["mini", "haiku", "flash"]
    assert [e.reason for e in result.explanation] == [
        "fallback 1/3: model 'mini'",
        "fallback 2/3: model 'haiku'",
        "fallback 3/3: model 'flash'",
    ]
    assert all(e.included for e in result.explanation)


def test_chain_of_names_and_aliases_drops_repeats() -> None:
    result = plan(Chain(steps=["chat", "mini", "big", "support"]))
    assert names(result) == ["mini", "big", "haiku", "flash"]
    assert "alias 'chat'" in result.explanation[0].reason


def test_unknown_name_fails_with_did_you_mean() -> None:
    with pytest.raises(ModelNotFoundError, match="'mini'"):
        plan(Chain(steps=["minii"]))


@pytest.mark.parametrize(
    ("when", "request_args", "features", "expected"),
    [
        (Condition(max_input_tokens=100), {"messages": SHORT}, None, "tiny"),
        (Condition(max_input_tokens=100), {"messages": LONG}, None, "big"),
        (Condition(min_input_tokens=1000), {"messages": LONG}, None, "tiny"),
        # A file by id may be any size: never a short prompt.
        (Condition(max_input_tokens=100), {"messages": FILE_BY_ID}, None, "big"),
        (Condition(min_input_tokens=1000), {"messages": FILE_BY_ID}, None, "tiny"),
        (Condition(max_output_tokens=50), {"max_tokens": 20}, None, "tiny"),
        (Condition(max_output_tokens=50), {"max_tokens": 200}, None, "big"),
        (Condition(max_output_tokens=50), {}, None, "big"),
        (Condition(capabilities=["tools"]), {"tools": TOOLS}, None, "tiny"),
        (Condition(capabilities=["vision"]), {"messages": IMAGE}, None, "tiny"),
        (Condition(capabilities=["vision"]), {"tools": TOOLS}, None, "big"),
        (
            Condition(capabilities=["json"]),
            {"response_format": {"type": "json_object"}},
            None,
            "tiny",
        ),
        (Condition(tags={"tier": "free"}), {}, RouteFeatures(tags={"tier": "free"}), "tiny"),
        (Condition(tags={"tier": "free"}), {}, RouteFeatures(tags={"tier": "paid"}), "big"),
        (Condition(tags={"tier": "free"}), {}, None, "big"),
        (Condition(), {}, None, "tiny"),
    ],
)
def test_rule_conditions(
    when: Condition, request_args: dict[str, Any], features: RouteFeatures | None, expected: str
) -> None:
    policy = Rules(rules=[Rule(when=when, use="tiny")], otherwise="big")
    # Plans are capability-checked ("tiny" declares none), so look at the rule's choice before
    # that check: the first entry of the plan, or of the error when the check left nothing.
    try:
        result = plan_route(
            registry(),
            ChatRequest(model="support", **{"messages": SHORT, **request_args}),
            Policy(),
            route_policy=policy,
            features=features,
        )
    except NoRouteError as refused:
        chosen = next(iter(refused.excluded))
    else:
        chosen = result.explanation[0].deployment
    assert chosen == expected


def test_the_first_matching_rule_wins_and_says_so() -> None:
    policy = Rules(
        rules=[
            Rule(when=Condition(tags={"tier": "free"}), use="tiny"),
            Rule(when=Condition(max_input_tokens=100), use="mini"),
        ],
        otherwise="big",
    )
    result = plan(policy)
    assert names(result) == ["mini"]
    assert result.explanation[0].reason.startswith("rule 2 (input <= 100 tokens) matched")


def test_rules_without_a_default_fail_naming_the_rules() -> None:
    policy = Rules(rules=[Rule(when=Condition(tags={"tier": "free"}), use="tiny")])
    with pytest.raises(InvalidRequestError, match="tag tier=free"):
        plan(policy)


def test_cheapest_orders_by_worst_case_cost_and_drops_what_does_not_fit() -> None:
    result = plan(Cheapest(of=["big", "haiku", "mini", "flash", "tiny"]), messages=LONG)
    assert names(result) == ["flash", "mini", "haiku", "big"]
    (tiny,) = [e for e in result.explanation if e.deployment == "tiny"]
    assert not tiny.included
    assert "does not fit" in tiny.reason
    assert result.explanation[0].reason.startswith("cheapest #1 (worst case $")


def test_fastest_orders_by_recent_latency_unknown_last() -> None:
    latencies = {"big": 0.2, "haiku": 0.9, "flash": 0.1}
    result = plan(Fastest(of=["mini", "haiku", "big", "flash"]), latencies=latencies)
    assert names(result) == ["flash", "big", "haiku", "mini"]
    assert "no recent latency" in result.explanation[-1].reason
    assert "recent average 0.100 s" in result.explanation[0].reason


def test_fastest_without_latencies_keeps_the_order() -> None:
    assert names(plan(Fastest(of=["haiku", "mini"]))) == ["haiku", "mini"]


def firsts(policy: RoutePolicy, latencies: dict[str, float], calls: int) -> dict[str, int]:
    """How many of ``calls`` plans, drawing from one seeded source, put each deployment first."""
    source = random.Random(16)
    counts: dict[str, int] = {}
    for _ in range(calls):
        result = plan_route(
            registry(),
            ChatRequest(model="support", messages=SHORT),
            Policy(),
            latencies=latencies,
            route_policy=policy,
            random=source.random,
        )
        first = result.deployments[0].name
        counts[first] = counts.get(first, 0) + 1
    return counts


def test_fastest_explores_a_deployment_with_no_latency() -> None:
    counts = firsts(Fastest(of=["haiku", "mini"]), {"haiku": 0.2}, calls=2000)
    # 10 % of calls go first to the unmeasured one: 200 expected, 3.4 standard deviations
    # (13.4 calls) either way allowed.
    assert 155 <= counts["mini"] <= 245
    assert counts["haiku"] == 2000 - counts["mini"]


def test_fastest_once_both_are_measured_the_faster_wins_most() -> None:
    counts = firsts(Fastest(of=["haiku", "mini"]), {"haiku": 0.9, "mini": 0.1}, calls=2000)
    # 2 % re-measure the slower one: 40 expected, about 6.3 standard deviation.
    assert 18 <= counts.get("haiku", 0) <= 62
    assert counts["mini"] >= 1938


def test_fastest_explores_only_with_a_random_source() -> None:
    # An estimate plans without one: always the measured order.
    for _ in range(50):
        assert names(plan(Fastest(of=["haiku", "mini"]), latencies={"haiku": 0.2})) == [
            "haiku",
            "mini",
        ]


def test_fastest_shares_are_shares() -> None:
    with pytest.raises(ValueError, match="explore is a share of calls"):
        Fastest(of=["haiku"], explore=1.5)


def test_split_is_sticky_by_key_and_spills_to_other_arms() -> None:
    split = Split(name="ab", arms=[Arm(use="mini", weight=50), Arm(use="haiku", weight=50)])
    first = plan(split, features=RouteFeatures(key="user-1"))
    again = plan(split, features=RouteFeatures(key="user-1"))
    assert names(first) == names(again)
    assert sorted(names(first)) == ["haiku", "mini"]
    assert "sticky by key" in first.explanation[0].reason
    assert "as a fallback" in first.explanation[1].reason


def test_split_without_spill_leaves_other_arms_out() -> None:
    split = Split(
        name="ab", arms=[Arm(use="mini", weight=1), Arm(use="haiku", weight=1)], spill=False
    )
    result = plan(split, features=RouteFeatures(draw=0.99))
    assert names(result) == ["haiku"]
    assert result.explanation[1].deployment == "mini"
    assert not result.explanation[1].included


def test_split_without_key_or_draw_takes_the_heaviest_arm() -> None:
    split = Split(name="ab", arms=[Arm(use="mini", weight=1), Arm(use="haiku", weight=9)])
    assert names(plan(split))[0] == "haiku"


def test_a_split_of_fallback_chains() -> None:
    split = Split(
        name="ab",
        arms=[
            Arm(use=Chain(steps=["mini", "haiku"]), weight=1, label="openai-first"),
            Arm(use=Chain(steps=["haiku", "flash"]), weight=1, label="anthropic-first"),
        ],
    )
    assert names(plan(split, features=RouteFeatures(draw=0.1))) == ["mini", "haiku", "flash"]
    assert names(plan(split, features=RouteFeatures(draw=0.9))) == ["haiku", "flash", "mini"]


def test_escalation_holds_the_larger_model_out_of_the_plan() -> None:
    result = plan(Escalate(first="mini", to="big"))
    assert names(result) == ["mini"]
    assert result.escalation is not None
    assert [d.name for d in result.escalation.deployments] == ["big"]
    (held,) = [e for e in result.explanation if e.deployment == "big"]
    assert not held.included
    assert "held for escalation" in held.reason


def test_a_rule_leading_into_escalation() -> None:
    policy = Rules(
        rules=[
            Rule(when=Condition(max_input_tokens=500), use=Escalate(first="mini", to="big")),
        ],
        otherwise="big",
    )
    short = plan(policy)
    assert names(short) == ["mini"]
    assert short.escalation is not None
    long = plan(policy, messages=LONG)
    assert names(long) == ["big"]
    assert long.escalation is None


def test_shadow_rides_along_without_changing_the_plan() -> None:
    result = plan(
        Shadowed(of="support", deployment="chat", sample=0.1, max_in_flight=2, route="support")
    )
    assert names(result) == ["mini", "haiku", "flash"]
    assert result.shadow is not None
    assert result.shadow.deployment.name == "mini"
    assert result.shadow.max_in_flight == 2


@pytest.mark.parametrize(
    ("request_args", "expected"),
    [
        ({"messages": IMAGE}, ["mini", "flash"]),
        ({"tools": TOOLS}, ["mini", "haiku"]),
        ({"response_format": {"type": "json_schema", "json_schema": {}}}, ["mini"]),
    ],
)
def test_capabilities_exclude_deployments(
    request_args: dict[str, Any], expected: list[str]
) -> None:
    result = plan(**request_args)
    assert names(result) == expected
    excluded = [e for e in result.explanation if not e.included]
    assert excluded
    assert all(e.reason.startswith("excluded: needs") for e in excluded)


def test_no_deployment_can_serve_names_each_constraint() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        plan(Chain(steps=["haiku", "tiny"]), messages=IMAGE)
    message = str(caught.value)
    assert "haiku: excluded: needs 'vision' (the messages hold images)" in message
    assert "tiny: excluded: needs 'vision'" in message


def test_escalation_targets_are_capability_checked_too() -> None:
    result = plan(Escalate(first="mini", to=Chain(steps=["haiku", "big"])), messages=IMAGE)
    assert result.escalation is not None
    assert [d.name for d in result.escalation.deployments] == ["big"]


def test_policy_fallback_override_still_applies() -> None:
    result = plan_route(
        registry(),
        ChatRequest(model="support", messages=SHORT),
        Policy(fallback=["big", "chat"]),
        features=RouteFeatures(),
    )
    assert names(result) == ["big", "mini"]
    assert result.reason.endswith("policy fallback override: big, mini")


def test_capabilities_are_checked_without_features_too() -> None:
    request = ChatRequest(model="support", messages=IMAGE)
    result = plan_route(registry(), request, Policy())
    assert names(result) == ["mini", "flash"]
    assert result.reason == "route 'support': fallback mini, haiku, flash"
    with pytest.raises(NoRouteError) as refused:
        plan_route(registry(), request, Policy(fallback=["haiku"]))
    assert refused.value.excluded == {
        "haiku": "excluded: needs 'vision' (the messages hold images), but it declares only [tools]"
    }


def test_allowed_deployments_narrow_the_plan_and_escalation() -> None:
    policy = Escalate(first=Chain(steps=["mini", "haiku"]), to="big")
    result = plan_route(
        registry(),
        ChatRequest(model="support", messages=SHORT),
        Policy(allowed_deployments=["haiku", "chat"]),  # "chat" is an alias of mini
        route_policy=policy,
    )
    assert names(result) == ["mini", "haiku"]
    assert result.escalation is not None
    assert result.escalation.deployments == ()
    (big,) = [e for e in result.explanation if e.deployment == "big"]
    assert not big.included
    with pytest.raises(NoRouteError, match=r"not in the call's Policy.allowed_deployments \[big\]"):
        plan_route(
            registry(),
            ChatRequest(model="support", messages=SHORT),
            Policy(allowed_deployments=["big"]),
        )


def test_split_arm_override_beats_the_key_and_names_the_arms_when_wrong() -> None:
    split = Split(name="ab", arms=[Arm(use="mini", weight=99), Arm(use="haiku", weight=1)])
    forced = plan(split, features=RouteFeatures(key="user-1", arm="haiku"))
    assert names(forced)[0] == "haiku"
    assert "assigned by the call's Policy.split_arm" in forced.explanation[0].reason
    with pytest.raises(InvalidRequestError, match=r"names no arm .*split 'ab': 'mini', 'haiku'"):
        plan(split, features=RouteFeatures(arm="flash"))
    # No split on the way: nothing to assign, so the arm is no error.
    assert names(plan(Chain(steps=["mini"]), features=RouteFeatures(arm="flash"))) == ["mini"]


def test_split_arm_reaches_a_nested_split_and_spilled_arms_do_not_object() -> None:
    inner = Split(name="inner", arms=[Arm(use="mini", weight=1), Arm(use="flash", weight=1)])
    outer = Split(
        name="outer", arms=[Arm(use=inner, weight=1, label="in"), Arm(use="haiku", weight=1)]
    )
    assert names(plan(outer, features=RouteFeatures(key="k", arm="haiku")))[0] == "haiku"
    assert names(plan(outer, features=RouteFeatures(key="k", arm="in")))[0] in {"mini", "flash"}
    # An arm of the inner split only: the outer split goes by the key, the inner one is forced.
    for arm in ("flash", "mini"):
        ordered = names(plan(outer, features=RouteFeatures(key="k", arm=arm)))
        assert set(ordered) == {"mini", "flash", "haiku"}
        assert next(n for n in ordered if n in {"mini", "flash"}) == arm


def test_a_split_without_key_draws_from_the_source_only_when_needed() -> None:
    draws: list[float] = []

    def source() -> float:
        draws.append(0.999)
        return 0.999

    split = Split(name="ab", arms=[Arm(use="mini", weight=1), Arm(use="haiku", weight=1)])
    request = ChatRequest(model="support", messages=SHORT)
    drawn = plan_route(registry(), request, Policy(), route_policy=split, random=source)
    assert names(drawn)[0] == "haiku"
    assert len(draws) == 1
    keyed = plan_route(
        registry(), request, Policy(), route_policy=split, random=source,
        features=RouteFeatures(key="k"),
    )  # fmt: skip
    assert len(draws) == 1
    assert "sticky by key" in keyed.explanation[0].reason
    plain = plan_route(registry(), request, Policy(), random=source)
    assert len(draws) == 1
    assert names(plain) == ["mini", "haiku", "flash"]


def test_route_cycles_in_code_are_refused() -> None:
    reg = registry()
    request = ChatRequest(model="support", messages=SHORT)
    with pytest.raises(ModelNotFoundError):
        plan_route(reg, request, Policy(), route_policy=Use(name="nowhere"))


def test_the_escalation_target_serves_what_nothing_before_it_can() -> None:
    result = plan(Escalate(first="tiny", to="big"), messages=IMAGE)
    assert names(result) == ["big"]
    assert result.escalation is None
    (big,) = [e for e in result.explanation if e.deployment == "big"]
    assert big.reason.startswith("the escalation target, since nothing before it can serve")
    with pytest.raises(NoRouteError):
        plan(Escalate(first="tiny", to="haiku"), messages=IMAGE)  # haiku lacks vision too


def test_a_single_model_is_planned_and_checked_like_a_route() -> None:
    via_alias = plan_route(registry(), ChatRequest(model="chat", messages=IMAGE), Policy())
    assert names(via_alias) == ["mini"]
    assert [(e.deployment, e.included) for e in via_alias.explanation] == [("mini", True)]
    assert via_alias.explanation[0].reason == via_alias.reason
    with pytest.raises(NoRouteError) as refused:
        plan_route(registry(), ChatRequest(model="tiny", messages=IMAGE), Policy())
    assert refused.value.excluded == {
        "tiny": "excluded: needs 'vision' (the messages hold images), but it declares only []"
    }
    assert "no deployment can serve this call to 'tiny'" in str(refused.value)


def test_a_filtered_escalation_target_says_why_in_the_error() -> None:
    with pytest.raises(NoRouteError) as refused:
        plan(Escalate(first="tiny", to="haiku"), messages=IMAGE)
    assert refused.value.excluded["haiku"].startswith("excluded: needs 'vision'")


def test_the_shadow_candidate_obeys_allowed_deployments_and_capabilities() -> None:
    shadowed = Shadowed(of="mini", deployment="haiku", sample=1.0, max_in_flight=2, route="r")
    request = ChatRequest(model="support", messages=SHORT)
    kept = plan_route(registry(), request, Policy(), route_policy=shadowed)
    assert kept.shadow is not None
    narrowed = plan_route(
        registry(), request, Policy(allowed_deployments=["mini"]), route_policy=shadowed
    )
    assert narrowed.shadow is None
    (entry,) = [e for e in narrowed.explanation if e.deployment == "haiku"]
    assert entry.reason.startswith("shadow candidate, no copy sent: excluded: not in the call's")
    image = plan_route(
        registry(), ChatRequest(model="support", messages=IMAGE), Policy(), route_policy=shadowed
    )
    assert image.shadow is None
