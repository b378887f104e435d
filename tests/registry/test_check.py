"""The table-reading kit: dotted keys and suggestions."""

from __future__ import annotations

import sys

from hypothesis import given
from hypothesis import strategies as st

from guardedllm.registry._check import Problems, did_you_mean, dotted

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

# Lone surrogates cannot appear in a TOML document, so no config key holds one.
_names = st.text(st.characters(blacklist_categories=["Cs"]), max_size=20)


@given(_names, _names)
def test_dotted_key_reads_back_as_toml(outer: str, inner: str) -> None:
    key = dotted("models", outer, inner)
    assert tomllib.loads(f"{key} = 1") == {"models": {outer: {inner: 1}}}


def test_dotted_leaves_bare_keys_alone() -> None:
    assert dotted("models", "gpt-4o-mini", "provider") == "models.gpt-4o-mini.provider"
    assert dotted("models", "gpt-4.1") == 'models."gpt-4.1"'
    assert dotted("", "aliases") == "aliases"


def test_did_you_mean() -> None:
    assert did_you_mean("fallbacks", ["fallback", "deadline_s"]) == " (did you mean 'fallback'?)"
    assert did_you_mean("zzz", ["fallback"]) == ""


def test_problems_are_reported_once_in_order() -> None:
    problems = Problems()
    problems.add("b", "x")
    problems.add("a", "y")
    problems.add("b", "x")
    assert [(p.key, p.message) for p in problems] == [("b", "x"), ("a", "y")]


def test_problems_mask_anything_shaped_like_a_key() -> None:
    problems = Problems()
    problems.add("aliases.chat", "names 'sk-abcdefghijklmnop1234', which is not a model")
    (problem,) = problems
    assert "sk-abcdefghijklmnop1234" not in problem.message
