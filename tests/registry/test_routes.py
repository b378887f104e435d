"""[routes.NAME] with strategies, rules, split, escalation and shadow: loading and checks."""

from __future__ import annotations

from typing import Any

import pytest
from tests.routing._registry import config

from guardedllm.errors import ConfigError
from guardedllm.policy import Policy
from guardedllm.registry import Condition, Registry, Route, RouteRule, ShadowSetting
from guardedllm.routing import RouteFeatures, plan_route
from guardedllm.types import ChatRequest

TOML = """
[providers.openai]
kind = "openai"

[providers.anthropic]
kind = "anthropic"

[models.mini]
provider = "openai"
model = "gpt-4o-mini"
tokenizer = "o200k_base"
context_window = 128000
max_output_tokens = 16384
input_usd_per_mtok = 0.15
output_usd_per_mtok = 0.60
capabilities = ["tools", "vision", "json"]

[models.big]
provider = "openai"
model = "gpt-4o"
tokenizer = "o200k_base"
context_window = 128000
max_output_tokens = 16384
input_usd_per_mtok = 2.5
output_usd_per_mtok = 10.0
capabilities = ["tools", "vision", "json"]

[models.haiku]
provider = "anthropic"
model = "claude-3-5-haiku-20241022"
tokenizer = "o200k_base"
context_window = 200000
max_output_tokens = 8192
input_usd_per_mtok = 0.80
output_usd_per_mtok = 4.00

[routes.cheap]
strategy = "cheapest"
fallback = ["big", "haiku", "mini"]

[routes.small-first]
fallback = ["mini"]
escalate_to = "big"
escalate_on = ["length", "invalid"]

[routes.ab]
split = { mini = 90, haiku = 10 }
shadow = { deployment = "big", sample = 0.05, max_in_flight = 2 }

[routes.smart]
fallback = ["big"]

[[routes.smart.rules]]
when = { tags = { tier = "free" } }
use = "ab"

[[routes.smart.rules]]
when = { max_input_tokens = 2000, capabilities = ["vision"] }
use = "small-first"
"""

HI = ({"role": "user", "content": "hi"},)


def problems(data: dict[str, Any]) -> dict[str, list[str]]:
    with pytest.raises(ConfigError) as caught:
        Registry.from_dict(data)
    found: dict[str, list[str]] = {}
    for problem in caught.value.problems:
        found.setdefault(problem.key, []).append(problem.message)
    return found


def test_the_routing_config_loads_into_values() -> None:
    registry = Registry.from_toml_text(TOML)
    assert registry.routes["cheap"].strategy == "cheapest"
    ab = registry.routes["ab"]
    assert ab.strategy == "split"
    assert ab.split == (("mini", 90.0), ("haiku", 10.0))
    assert ab.shadow == ShadowSetting(deployment="big", sample=0.05, max_in_flight=2)
    assert registry.routes["small-first"].escalate_on == frozenset({"length", "invalid"})
    smart = registry.routes["smart"]
    assert smart.rules[0] == RouteRule(when=Condition(tags={"tier": "free"}), use="ab")
    assert [d.name for d in registry.resolve("smart").deployments] == ["big", "mini", "haiku"]
    assert registry.resolve("ab").reason == "route 'ab': split mini 90, haiku 10; shadowed by big"


def test_config_routes_plan_per_call() -> None:
    registry = Registry.from_toml_text(TOML)

    def first(model: str, features: RouteFeatures, messages: Any = HI) -> str:
        request = ChatRequest(model=model, messages=messages)
        return plan_route(registry, request, Policy(), features=features).deployments[0].name

    assert first("cheap", RouteFeatures()) == "mini"
    assert first("smart", RouteFeatures(tags={"tier": "free"}, draw=0.95)) == "haiku"
    assert first("smart", RouteFeatures()) == "big"
    image = ({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,"}}]},)
    plan = plan_route(
        registry, ChatRequest(model="smart", messages=image), Policy(), features=RouteFeatures()
    )
    assert [d.name for d in plan.deployments] == ["mini"]
    assert plan.escalation is not None
    assert plan.escalation.deployments[0].name == "big"
    shadowed = plan_route(
        registry, ChatRequest(model="ab", messages=HI), Policy(), features=RouteFeatures()
    )
    assert shadowed.shadow is not None
    assert shadowed.shadow.sample == 0.05


def test_every_routing_problem_at_once_with_its_key() -> None:
    data = config()
    data["routes"] = {
        "a": {"strategy": "fastst", "fallback": ["mini"]},
        "b": {"split": {"mini": 0, "haiku": "x", "nope": 1}},
        "c": {
            "fallback": ["mini"],
            "rules": [
                {"when": {"max_input_tokns": 5, "capabilities": ["vison"]}, "use": "bgi"},
                {"when": {}},
            ],
            "escalate_to": "nowhere",
            "escalate_on": ["lenght"],
            "shadow": {"deployment": "support-route", "sample": 2},
        },
        "d": {"strategy": "split", "fallback": ["mini"]},
    }
    found = problems(data)
    assert "did you mean 'fastest'" in found["routes.a.strategy"][0]
    assert "weight > 0" in found["routes.b.split.mini"][0]
    assert "a weight (a number)" in found["routes.b.split.haiku"][0]
    assert "not a model, alias or route" in found["routes.b.split.nope"][0]
    assert "did you mean 'max_input_tokens'" in found["routes.c.rules[0].when.max_input_tokns"][0]
    assert "did you mean 'vision'" in found["routes.c.rules[0].when.capabilities"][0]
    assert "did you mean 'big'" in found["routes.c.rules[0].use"][0]
    assert "missing" in found["routes.c.rules[1].use"][0]
    assert "not a model, alias or route" in found["routes.c.escalate_to"][0]
    assert "did you mean 'length'" in found["routes.c.escalate_on"][0]
    assert "0 < sample <= 1" in found["routes.c.shadow.sample"][0]
    assert 'strategy "split" needs it' in found["routes.d.split"][0]


def test_shadow_must_be_a_model() -> None:
    data = config()
    data["routes"]["x"] = {"fallback": ["mini"], "shadow": {"deployment": "support", "sample": 0.1}}
    assert "not a model" in problems(data)["routes.x.shadow.deployment"][0]


def test_cycles_between_routes_are_refused() -> None:
    data = config()
    data["routes"]["a"] = {"fallback": ["mini"], "rules": [{"use": "b"}]}
    data["routes"]["b"] = {"fallback": ["mini"], "escalate_to": "a"}
    found = problems(data)
    assert found["routes.a"] == [
        "route cycle a -> b -> a (through rules, split or escalate_to): "
        "point one of them at models instead"
    ]


def test_a_route_without_fallback_or_split_is_missing_its_fallback() -> None:
    data = config()
    data["routes"]["x"] = {"deadline_s": 3}
    assert "missing" in problems(data)["routes.x.fallback"][0]


def test_routes_built_in_code() -> None:
    base = Registry.from_dict(config())
    ab = Route(name="ab", split={"mini": 1, "support": 1})
    registry = base.with_routes(ab)
    assert "ab" not in base.routes
    assert [d.name for d in registry.resolve("ab").deployments] == ["mini", "haiku", "flash"]
    with pytest.raises(ValueError, match="does not resolve"):
        base.with_routes(Route(name="bad", fallback=["mini"], escalate_to="nowhere"))
    with pytest.raises(ValueError, match="same name"):
        base.with_routes(Route(name="mini", fallback=["haiku"]))
    with pytest.raises(ValueError, match="route cycle"):
        base.with_routes(
            Route(name="p", fallback=["mini"], escalate_to="q"),
            Route(name="q", fallback=["mini"], escalate_to="p"),
        )


def test_a_rule_needing_capabilities_must_lead_to_a_deployment_that_has_them() -> None:
    data = config()  # tiny declares no capabilities; flash declares vision
    data["routes"]["support"]["rules"] = [
        {"when": {"capabilities": ["vision"]}, "use": "tiny"},
        {"when": {"capabilities": ["vision"]}, "use": "flash"},
        {"when": {"capabilities": ["vision", "tools"]}, "use": "support-2"},
    ]
    data["routes"]["support-2"] = {"fallback": ["tiny", "haiku"]}  # tools, but no vision
    found = problems(data)
    assert set(found) == {"routes.support.rules[0].use", "routes.support.rules[2].use"}
    (message,) = found["routes.support.rules[2].use"]
    assert "need ['tools', 'vision']" in message
    assert "'support-2' reaches (tiny, haiku)" in message
