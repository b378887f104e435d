"""Sticky assignment: stable per key, across processes and registries, close to the weights."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.routing._registry import config, registry

from guardedllm.policy import Policy
from guardedllm.routing import Arm, RouteFeatures, Split, pick_weighted, plan_route, position
from guardedllm.types import ChatRequest


@given(st.text(), st.text())
def test_position_is_a_fraction_and_depends_on_the_salt(salt: str, key: str) -> None:
    point = position(salt, key)
    assert 0.0 <= point < 1.0
    assert position(salt, key) == point


def test_position_is_the_same_in_a_fresh_process() -> None:
    # A fresh interpreter has a different hash() seed: sha256 must not care.
    code = "from guardedllm.routing import position; print(repr(position('ab', 'user-42')))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        capture_output=True,
        text=True,
        env={"PYTHONHASHSEED": "12345"},
    ).stdout
    assert float(out) == position("ab", "user-42")


@given(
    st.lists(st.floats(min_value=0.01, max_value=100), min_size=1, max_size=6),
    st.floats(0, 1, exclude_max=True),
)
def test_pick_weighted_is_an_index(weights: list[float], point: float) -> None:
    assert 0 <= pick_weighted(weights, point) < len(weights)


def test_pick_weighted_refuses_bad_weights() -> None:
    with pytest.raises(ValueError, match="> 0"):
        pick_weighted([1.0, 0.0], 0.5)


def test_split_shares_are_close_to_the_weights() -> None:
    split = Split(name="ab", arms=[Arm(use="mini", weight=90), Arm(use="haiku", weight=10)])
    counts = [0, 0]
    for n in range(10_000):
        counts[split.assign(f"user-{n}", None)[0]] += 1
    assert 8_800 < counts[0] < 9_200


@given(st.text(min_size=1))
def test_the_same_key_lands_on_the_same_arm_in_two_fresh_registries(key: str) -> None:
    data = config()
    data["routes"]["ab"] = {"split": {"mini": 50, "haiku": 30, "flash": 20}}
    request = ChatRequest(model="ab", messages=({"role": "user", "content": "hi"},))
    features = RouteFeatures(key=key)
    first = plan_route(type(registry()).from_dict(data), request, Policy(), features=features)
    second = plan_route(type(registry()).from_dict(data), request, Policy(), features=features)
    assert first.deployments[0] == second.deployments[0]
