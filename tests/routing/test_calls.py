"""Routing applied to whole calls, through Client and AsyncClient (asyncio, trio) against
FakeProvider over loopback HTTP: capability checks, sticky splits, rules leading into
escalation, splits of fallback chains, cross-vendor fallback, client-error fallback,
fastest-first, and the explanation in ``resp.guard``."""

from __future__ import annotations

import random
from typing import Any

import anyio
import pytest

from guardedllm import AsyncClient, Client, Policy, Registry, policy_scope
from guardedllm.errors import BadRequestError, NoRouteError
from guardedllm.testing import FakeProvider
from guardedllm.types import ChatCompletion
from support import ENVIRON, Call, Streamed, config_text, make_call

ROUTES = """
[models.text-only]
provider = "openai"
model = "text-only-1"
tokenizer = "o200k_base"
context_window = 16000
max_output_tokens = 4096
input_usd_per_mtok = 0.05
output_usd_per_mtok = 0.20

[routes.vision-first]
fallback = ["text-only", "claude-haiku"]

[routes.text-only-route]
fallback = ["text-only"]

[routes.ab]
split = { "gpt-4o-mini" = 1, "claude-haiku" = 1 }

[routes.small-first]
fallback = ["llama"]
escalate_to = "gpt-4o-mini"

[routes.smart]
fallback = ["claude-haiku"]

[[routes.smart.rules]]
when = { max_input_tokens = 50 }
use = "small-first"

[routes.openai-chain]
fallback = ["gpt-4o-mini", "azure-4o"]

[routes.anthropic-chain]
fallback = ["claude-haiku", "gemini-flash"]

[routes.ab-chains]
split = { "openai-chain" = 1, "anthropic-chain" = 1 }

[routes.cross]
fallback = ["gpt-4o-mini", "claude-haiku", "gemini-flash"]

[routes.thrifty]
strategy = "cheapest"
fallback = ["azure-4o", "gpt-4o-mini", "gemini-flash"]

[routes.quick]
strategy = "fastest"
fallback = ["gpt-4o-mini", "claude-haiku"]
"""

SHORT = [{"role": "user", "content": "Hi there"}]
LONG = [{"role": "user", "content": "Please summarise this. " + "word " * 400}]
IMAGE = [
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is in this picture?"},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
        ],
    }
]
TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]


@pytest.fixture
def registry(fake_provider: FakeProvider) -> Registry:
    return Registry.from_toml_text(config_text(fake_provider) + ROUTES, source="test-config")


def answered(result: Any) -> ChatCompletion:
    assert isinstance(result, ChatCompletion)
    assert result.guard is not None
    return result


# ---------------------------------------------------------------------------- capabilities


def test_images_never_go_to_a_model_without_vision(call: Call, fake_provider: FakeProvider) -> None:
    response = answered(call(model="vision-first", messages=IMAGE, max_tokens=20))
    assert response.guard is not None
    assert response.guard.deployment == "claude-haiku"
    assert [r.model for r in fake_provider.requests] == ["claude-3-5-haiku-20241022"]
    (text_only,) = [e for e in response.guard.plan if e.deployment == "text-only"]
    assert not text_only.included
    assert "needs 'vision' (the messages hold images)" in text_only.reason


@pytest.mark.parametrize(
    ("kwargs", "constraint"),
    [
        ({"messages": IMAGE}, "needs 'vision'"),
        ({"messages": SHORT, "tools": TOOLS}, "needs 'tools' (the request has tools)"),
        (
            {"messages": SHORT, "response_format": {"type": "json_object"}},
            "needs 'json' (response_format is json_object)",
        ),
    ],
)
def test_a_call_no_deployment_can_serve_fails_before_any_request(
    call: Call, fake_provider: FakeProvider, kwargs: dict[str, Any], constraint: str
) -> None:
    with pytest.raises(NoRouteError) as refused:
        call(model="text-only-route", max_tokens=20, **kwargs)
    assert fake_provider.requests == []
    assert constraint in refused.value.excluded["text-only"]
    assert "text-only: excluded:" in str(refused.value)


# ---------------------------------------------------------------------------- splits


def test_a_split_is_sticky_by_user_across_two_clients(
    registry: Registry, fake_provider: FakeProvider
) -> None:
    users = [f"user-{n}" for n in range(24)]

    def arms_sync() -> dict[str, str | None]:
        with Client(registry, environ=ENVIRON) as client:
            return {
                user: answered(
                    client.chat.completions.create(model="ab", messages=SHORT, user=user)
                ).guard.deployment  # type: ignore[union-attr]
                for user in users
            }

    async def arms_async() -> dict[str, str | None]:
        async with AsyncClient(registry, environ=ENVIRON) as client:
            found: dict[str, str | None] = {}
            for user in users:
                result = await client.chat.completions.create(
                    model="ab", messages=SHORT, policy=Policy(route_key=user)
                )
                found[user] = answered(result).guard.deployment  # type: ignore[union-attr]
            return found

    first = arms_sync()
    second = anyio.run(arms_async)
    assert first == second
    assert set(first.values()) == {"gpt-4o-mini", "claude-haiku"}  # both arms get users
    explained = answered(make_call("sync", registry)(model="ab", messages=SHORT, user="user-3"))
    assert explained.guard is not None
    assert "sticky by key" in explained.guard.plan[0].reason


def test_split_arm_override_assigns_the_arm(call: Call) -> None:
    for user in ("a", "b", "c", "d"):
        response = answered(
            call(
                model="ab",
                messages=SHORT,
                user=user,
                policy=Policy(split_arm="claude-haiku"),
            )
        )
        assert response.guard is not None
        assert response.guard.deployment == "claude-haiku"


def test_a_split_of_fallback_chains_falls_back_within_the_assigned_arm_first(
    call: Call, fake_provider: FakeProvider
) -> None:
    fake_provider.script(vendor="openai", status=503)
    response = answered(
        call(model="ab-chains", messages=SHORT, policy=Policy(split_arm="openai-chain"))
    )
    assert response.guard is not None
    assert response.guard.deployment == "azure-4o"  # the arm's own fallback, before the other arm
    included = [e.deployment for e in response.guard.plan if e.included]
    assert included == ["gpt-4o-mini", "azure-4o", "claude-haiku", "gemini-flash"]


# ---------------------------------------------------------------------------- escalation


def test_a_short_prompt_takes_the_small_model_and_a_long_one_the_rule_default(
    call: Call,
) -> None:
    short = answered(call(model="smart", messages=SHORT, max_tokens=20))
    assert short.guard is not None
    assert short.guard.deployment == "llama"
    assert short.guard.decisions == ("escalation: the answer was accepted",)
    long = answered(call(model="smart", messages=LONG, max_tokens=20))
    assert long.guard is not None
    assert long.guard.deployment == "claude-haiku"
    assert "no rule matched" in long.guard.plan[0].reason


def test_a_rule_leads_into_escalation_when_the_small_model_is_cut_off(
    call: Call, fake_provider: FakeProvider
) -> None:
    fake_provider.script(model="llama-3.1-8b-instruct", finish_reason="length")
    response = answered(call(model="smart", messages=SHORT, max_tokens=20))
    guard = response.guard
    assert guard is not None
    assert guard.deployment == "gpt-4o-mini"
    assert [(a.deployment, a.outcome) for a in guard.attempts] == [
        ("llama", "ok"),
        ("gpt-4o-mini", "ok"),
    ]
    assert any('finish_reason "length"' in d for d in guard.decisions)
    assert guard.plan[0].reason.startswith("rule 1 (input <= 50 tokens) matched")
    # Both answers were billed; llama is free, so the call cost what gpt-4o-mini's did.
    assert guard.cost_usd is not None
    assert guard.cost_usd > 0


def test_a_rejected_answer_escalates_and_both_are_billed(
    call: Call, fake_provider: FakeProvider
) -> None:
    fake_provider.script(model="llama-3.1-8b-instruct", content="no idea")
    fake_provider.script(model="gpt-4o-mini-2024-07-18", content="Paris")

    def good(completion: ChatCompletion) -> bool:
        return completion.choices[0].message.content != "no idea"

    response = answered(
        call(model="small-first", messages=SHORT, max_tokens=20, policy=Policy(validator=good))
    )
    assert response.choices[0].message.content == "Paris"
    assert response.guard is not None
    assert "the validator rejected the answer" in " ".join(response.guard.decisions)
    assert len(fake_provider.requests) == 2


def test_an_error_escalates_and_a_stream_escalates_before_its_first_chunk(
    call: Call, fake_provider: FakeProvider
) -> None:
    fake_provider.script(model="llama-3.1-8b-instruct", status=500)
    response = call(model="small-first", messages=SHORT, max_tokens=20, stream=True)
    assert isinstance(response, Streamed)
    assert response.completed
    assert response.guard.deployment == "gpt-4o-mini"
    assert any("AllRoutesFailedError: escalating" in d for d in response.guard.decisions)


# ---------------------------------------------------------------------------- fallback


@pytest.mark.parametrize("stream", [False, True])
def test_fallback_crosses_vendors_with_the_request_translated(
    call: Call, fake_provider: FakeProvider, stream: bool
) -> None:
    fake_provider.script(vendor="openai", status=503)
    fake_provider.script(vendor="anthropic", status=529)
    fake_provider.script(vendor="gemini", content="from gemini")
    result = call(model="cross", messages=SHORT, max_tokens=20, stream=stream)
    guard = result.guard
    assert guard.deployment == "gemini-flash"
    vendors = [r.vendor for r in fake_provider.requests]
    assert vendors[-1] == "gemini"
    assert {"openai", "anthropic"} <= set(vendors)
    gemini = fake_provider.requests[-1].json
    assert gemini["contents"][0]["parts"][0]["text"] == "Hi there"
    text = result.content if isinstance(result, Streamed) else result.choices[0].message.content
    assert text == "from gemini"


@pytest.mark.parametrize(
    ("route", "failing", "answering", "reason"),
    [
        ("cross", {"vendor": "openai"}, "claude-haiku", "400"),  # fallback
        ("small-first", {"model": "llama-3.1-8b-instruct"}, "gpt-4o-mini", "escalation"),
    ],
)
def test_client_errors_move_on_only_when_the_policy_says_so(
    call: Call,
    fake_provider: FakeProvider,
    route: str,
    failing: dict[str, str],
    answering: str,
    reason: str,
) -> None:
    fake_provider.script(status=400, **failing)  # type: ignore[arg-type]
    with pytest.raises(BadRequestError):
        call(model=route, messages=SHORT, max_tokens=20)
    assert len(fake_provider.requests) == 1
    response = answered(
        call(
            model=route,
            messages=SHORT,
            max_tokens=20,
            policy=Policy(fallback_on_client_error=True),
        )
    )
    assert response.guard is not None
    moved = response.guard.attempts[-1]
    assert (moved.deployment, moved.outcome, moved.retry_reason) == (answering, "ok", reason)


def test_cheapest_first_sends_to_the_cheapest_deployment_and_falls_back_in_price_order(
    call: Call, fake_provider: FakeProvider
) -> None:
    response = answered(call(model="thrifty", messages=SHORT, max_tokens=20))
    assert response.guard is not None
    assert response.guard.deployment == "gemini-flash"
    assert [e.deployment for e in response.guard.plan] == [
        "gemini-flash",
        "gpt-4o-mini",
        "azure-4o",
    ]
    fake_provider.script(vendor="gemini", status=503)
    moved = answered(call(model="thrifty", messages=SHORT, max_tokens=20))
    assert moved.guard is not None
    assert moved.guard.deployment == "gpt-4o-mini"


def test_fastest_first_follows_the_recent_average_latency(
    registry: Registry, fake_provider: FakeProvider
) -> None:
    fake_provider.script(model="gpt-4o-mini-2024-07-18", latency=0.25)
    policies = [None, Policy(allowed_deployments=["claude-haiku"]), None, None]
    # A draw past the exploration shares: the order is the measured one.
    with Client(registry, environ=ENVIRON, random=lambda: 0.5) as client:
        served = [
            answered(
                client.chat.completions.create(model="quick", messages=SHORT, policy=policy)
            ).guard
            for policy in policies
        ]
    deployments = [g.deployment for g in served if g is not None]
    # No latency known: the listed order. Measured gpt-4o-mini goes before unmeasured
    # claude-haiku; once both are measured, the faster one goes first.
    assert deployments == ["gpt-4o-mini", "claude-haiku", "claude-haiku", "claude-haiku"]
    assert served[0] is not None
    assert "no recent latency" in served[0].plan[0].reason
    assert served[3] is not None
    assert served[3].plan[0].reason.startswith("recent average")


def test_fastest_finds_the_faster_deployment_it_had_no_latency_for(
    registry: Registry, fake_provider: FakeProvider
) -> None:
    # The slower deployment is listed first: it answers the first call and is measured, and
    # without exploration every later call went to it too (claude-haiku was never tried).
    # 0.1 s slower: far past any hiccup of a loaded machine's loopback.
    fake_provider.script(model="gpt-4o-mini-2024-07-18", latency=0.1)
    with Client(registry, environ=ENVIRON, random=random.Random(16).random) as client:
        served = [
            answered(client.chat.completions.create(model="quick", messages=SHORT)).guard
            for _ in range(40)
        ]
    deployments = [g.deployment for g in served if g is not None]
    assert deployments[0] == "gpt-4o-mini"
    found = deployments.index("claude-haiku")
    explored = served[found]
    assert explored is not None
    assert explored.plan[0].reason.startswith("exploring")
    # Once measured, the faster one takes almost every call (a few re-measure the other).
    after = deployments[found + 1 :]
    assert after.count("claude-haiku") >= 0.8 * len(after)


# ---------------------------------------------------------------------------- explanation


def test_guard_explains_the_plan_attempts_and_decisions(
    call: Call, fake_provider: FakeProvider
) -> None:
    fake_provider.script(vendor="openai", status=503)
    response = answered(call(model="vision-first", messages=IMAGE, max_tokens=20))
    assert response.guard is not None
    text = response.guard.explain()
    assert "- text-only: excluded: needs 'vision'" in text
    assert "+ claude-haiku:" in text
    assert "answered by claude-haiku" in text
    dumped = response.guard.to_dict()
    assert dumped["plan"][0]["deployment"] == "text-only"


# ---------------------------------------------------------------------------- scopes


def test_policy_scopes_stay_with_their_task_under_concurrency(registry: Registry) -> None:
    async def main() -> dict[str, list[str | None]]:
        seen: dict[str, list[str | None]] = {"gpt-4o-mini": [], "claude-haiku": []}
        async with AsyncClient(registry, environ=ENVIRON) as client:

            async def worker(allowed: str) -> None:
                with policy_scope(Policy(allowed_deployments=[allowed])):
                    for _ in range(5):
                        result = await client.chat.completions.create(model="cross", messages=SHORT)
                        seen[allowed].append(answered(result).guard.deployment)  # type: ignore[union-attr]
                        await anyio.sleep(0)

            async with anyio.create_task_group() as group:
                for allowed in ("gpt-4o-mini", "claude-haiku", "gpt-4o-mini", "claude-haiku"):
                    group.start_soon(worker, allowed)
            # Outside every scope again: the route's own first choice.
            plain = await client.chat.completions.create(model="cross", messages=SHORT)
            assert answered(plain).guard.deployment == "gpt-4o-mini"  # type: ignore[union-attr]
        return seen

    seen = anyio.run(main)
    assert seen["gpt-4o-mini"] == ["gpt-4o-mini"] * 10
    assert seen["claude-haiku"] == ["claude-haiku"] * 10


def test_policy_scopes_are_per_thread_and_a_call_policy_wins(registry: Registry) -> None:
    import threading

    results: dict[str, list[str | None]] = {}
    with Client(registry, environ=ENVIRON) as client:

        def worker(allowed: str) -> None:
            with policy_scope(Policy(allowed_deployments=[allowed], deadline_s=7)):
                results[allowed] = [
                    answered(
                        client.chat.completions.create(model="cross", messages=SHORT)
                    ).guard.deployment  # type: ignore[union-attr]
                    for _ in range(4)
                ]

        threads = [
            threading.Thread(target=worker, args=(a,)) for a in ("claude-haiku", "gemini-flash")
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        with policy_scope(Policy(allowed_deployments=["claude-haiku"])):
            with policy_scope(Policy(deadline_s=3)):  # nested: both apply
                inner = client.chat.completions.create(model="cross", messages=SHORT)
            own = client.chat.completions.create(
                model="cross", messages=SHORT, policy=Policy(allowed_deployments=["gemini-flash"])
            )
    assert results == {"claude-haiku": ["claude-haiku"] * 4, "gemini-flash": ["gemini-flash"] * 4}
    assert answered(inner).guard.deployment == "claude-haiku"  # type: ignore[union-attr]
    assert answered(own).guard.deployment == "gemini-flash"  # type: ignore[union-attr]


def test_an_escalated_call_with_hedging_on_hedges_within_the_escalation_target(
    call: Call, fake_provider: FakeProvider
) -> None:
    fake_provider.script(model="llama-3.1-8b-instruct", status=500)
    response = answered(call(model="small-first", messages=SHORT, policy=Policy(hedge_after_s=5.0)))
    assert response.guard is not None
    assert response.guard.deployment == "gpt-4o-mini"
