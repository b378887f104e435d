"""The public API walked with wrong arguments: every mistake is a ``GuardedLLMError`` (an
``ArgumentError``, also a ValueError, or an ``ArgumentTypeError``, also a TypeError) whose
message names the argument and says what to pass, never an AttributeError or a comparison's
TypeError from deep inside."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from guardedllm import AsyncClient, Client, Policy, Registry, policy_scope
from guardedllm.errors import ArgumentError, ArgumentTypeError, GuardedLLMError
from guardedllm.guards import BreakerConfig, RetryBudgetConfig, SpendBudget
from guardedllm.registry import RecordConfig
from guardedllm.report import Chart, Table
from guardedllm.state import RedisBackend
from guardedllm.testing import FakeProvider
from guardedllm.types import Usage

REGISTRY = Registry.from_dict(
    {
        "providers": {"openai": {"kind": "openai", "api_key_env": "OPENAI_API_KEY"}},
        "models": {
            "mini": {
                "provider": "openai",
                "model": "gpt-4o-mini",
                "tokenizer": "o200k_base",
                "context_window": 128_000,
                "max_output_tokens": 16_384,
                "input_usd_per_mtok": 0.15,
                "output_usd_per_mtok": 0.6,
            }
        },
    }
)

TYPE_MISTAKES: list[tuple[str, Callable[[], object], str]] = [
    ("Client(path)", lambda: Client("guardedllm.toml"), r"Client.from_config\('guardedllm.toml'\)"),
    ("AsyncClient(path)", lambda: AsyncClient("g.toml"), r"AsyncClient.from_config\('g.toml'\)"),
    ("Client(dict)", lambda: Client({"models": {}}), "Registry.from_dict"),  # type: ignore[arg-type]
    ("Client(policy=dict)", lambda: Client(REGISTRY, policy={"max_attempts": 2}), r"Policy\("),  # type: ignore[arg-type]
    ("Client(environ=list)", lambda: Client(REGISTRY, environ=["K=v"]), "environ"),  # type: ignore[arg-type]
    ("Client(budgets=one)", lambda: Client(REGISTRY, budgets=_budget()), "list of"),  # type: ignore[arg-type]
    ("Client(budgets=[dict])", lambda: Client(REGISTRY, budgets=[{}]), "one of them"),  # type: ignore[list-item]
    ("Policy(max_cost_usd=str)", lambda: Policy(max_cost_usd="0.01"), "float"),  # type: ignore[arg-type]
    ("Policy(max_attempts=float)", lambda: Policy(max_attempts=1.5), "whole number"),  # type: ignore[arg-type]
    ("Policy(deadline_s=bool)", lambda: Policy(deadline_s=True), "a number"),
    ("Policy(fallback=str)", lambda: Policy(fallback="gpt-4o"), r"\['gpt-4o'\]"),
    ("Policy(tags=list)", lambda: Policy(tags=["a"]), "dict of str"),  # type: ignore[arg-type]
    ("Policy(exact_tokens=str)", lambda: Policy(exact_tokens="yes"), "True or False"),  # type: ignore[arg-type]
    ("Policy(split_arm=int)", lambda: Policy(split_arm=2), "must be a str"),  # type: ignore[arg-type]
    ("Policy(validator=str)", lambda: Policy(validator="ok"), "function"),  # type: ignore[arg-type]
    ("policy_scope(dict)", lambda: policy_scope({}).__enter__(), "Policy"),  # type: ignore[arg-type]
    (
        "SpendBudget(limit=str)",
        lambda: SpendBudget(scope="global", window="day", limit_usd="5"),
        "limit_usd",
    ),  # type: ignore[arg-type]
    (
        "SpendBudget(name=int)",
        lambda: SpendBudget(scope="global", window="day", limit_usd=5, name=3),
        "name",
    ),  # type: ignore[arg-type]
    ("BreakerConfig(str)", lambda: BreakerConfig(failure_rate_threshold="0.5"), "failure_rate"),  # type: ignore[arg-type]
    ("BreakerConfig(float probes)", lambda: BreakerConfig(half_open_probes=1.5), "whole number"),  # type: ignore[arg-type]
    ("RetryBudgetConfig(str)", lambda: RetryBudgetConfig(percent_can_retry="0.1"), "percent"),  # type: ignore[arg-type]
    (
        "RedisBackend(key_prefix=int)",
        lambda: RedisBackend.from_url("redis://127.0.0.1:1/0", key_prefix=1),
        "key_prefix",
    ),  # type: ignore[arg-type]
]

VALUE_MISTAKES: list[tuple[str, Callable[[], object], str]] = [
    ("Policy(deadline_s=-1)", lambda: Policy(deadline_s=-1), "deadline_s must be > 0"),
    (
        "SpendBudget(window)",
        lambda: SpendBudget(scope="global", window="fortnight", limit_usd=5),
        "'day'",
    ),  # type: ignore[arg-type]
    (
        "SpendBudget(scope)",
        lambda: SpendBudget(scope="team", window="day", limit_usd=5),
        "'global'",
    ),  # type: ignore[arg-type]
    ("BreakerConfig(rate)", lambda: BreakerConfig(failure_rate_threshold=2.0), "fraction"),
    ("FakeProvider(port=-1)", lambda: FakeProvider(port=-1), "port"),
    ("model_dump(mode=yaml)", lambda: Usage.of(1, 2).model_dump(mode="yaml"), "mode"),
    ("RecordConfig(sample=2)", lambda: RecordConfig(path="/tmp/r", sample=2), "sample"),
    ("Table(short row)", lambda: Table(title="t", columns=("a", "b"), rows=[("1",)]), "cells"),
    ("Chart(no series)", lambda: Chart(kind="cdf", title="c", x_label="x", series=()), "series"),
]


def _budget() -> Any:
    return SpendBudget(scope="global", window="day", limit_usd=1.0)


@pytest.mark.parametrize(("what", "call", "says"), TYPE_MISTAKES, ids=[c[0] for c in TYPE_MISTAKES])
def test_a_wrong_type_is_a_typed_error_naming_what_to_pass(
    what: str, call: Callable[[], object], says: str
) -> None:
    with pytest.raises(ArgumentTypeError, match=says) as info:
        call()
    assert isinstance(info.value, GuardedLLMError)
    assert isinstance(info.value, TypeError)  # what such code caught before


@pytest.mark.parametrize(
    ("what", "call", "says"), VALUE_MISTAKES, ids=[c[0] for c in VALUE_MISTAKES]
)
def test_a_wrong_value_is_a_typed_error_naming_what_to_pass(
    what: str, call: Callable[[], object], says: str
) -> None:
    with pytest.raises(ArgumentError, match=says) as info:
        call()
    assert isinstance(info.value, GuardedLLMError)
    assert isinstance(info.value, ValueError)
